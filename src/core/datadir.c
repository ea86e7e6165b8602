/*
 * datadir.c - locating bundled data files: $LMX_DATA_DIR, then
 * <exe dir>/../share/loramix, then the compile-time LMX_DEFAULT_DATA_DIR
 * (see datadir.h). The executable's directory comes from /proc/self/exe.
 */
#include "core/datadir.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifndef LMX_DEFAULT_DATA_DIR
#define LMX_DEFAULT_DATA_DIR ""
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* 1 when `rel` is a plain relative name: not empty, no leading '/', no ".."
 * path component. */
static int rel_ok(const char *rel) {
    if (!rel || !rel[0] || rel[0] == '/') return 0;
    const char *p = rel;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!e) break;
        p = e + 1;
    }
    return 1;
}

/* Join dir and rel into buf; 0 when it does not fit. */
static int join(char *buf, size_t cap, const char *dir, const char *rel) {
    size_t nd = strlen(dir);
    while (nd > 1 && dir[nd - 1] == '/') nd--;
    int n = snprintf(buf, cap, "%.*s/%s", (int)nd, dir, rel);
    return n >= 0 && (size_t)n < cap;
}

/* Directory of the running executable into buf (no trailing '/'); 0 if unknown. */
static int exe_dir(char *buf, size_t cap) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) return 0;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    if (slash == buf) slash[1] = 0;
    else *slash = 0;
    return 1;
}

lmx_status lmx_data_find(const char *rel, char *out, size_t cap) {
    if (!rel_ok(rel)) return lmx_err(LMX_ERR_ARG, "data file name '%s': expected a relative path", rel ? rel : "(null)");
    if (!out || cap == 0) return lmx_err(LMX_ERR_ARG, "%s: no output buffer", rel);
    out[0] = 0;

    char path[PATH_MAX + 64];
    errno = 0;
    const char *env = getenv("LMX_DATA_DIR");
    if (env && env[0]) {
        if (!join(path, sizeof path, env, rel) || access(path, R_OK) != 0)
            return lmx_err(LMX_ERR_IO, "%s: not found in LMX_DATA_DIR=%s (%s)", rel, env,
                           strerror(errno ? errno : ENOENT));
        goto found;
    }

    char tried[2 * (PATH_MAX + 64)];
    tried[0] = 0;
    char dir[PATH_MAX];
    if (exe_dir(dir, sizeof dir)) {
        char share[PATH_MAX + 32];
        snprintf(share, sizeof share, "%s/../share/loramix", strcmp(dir, "/") == 0 ? "" : dir);
        if (join(path, sizeof path, share, rel)) {
            if (access(path, R_OK) == 0) goto found;
            snprintf(tried, sizeof tried, "%s", path);
        }
    }
    if (LMX_DEFAULT_DATA_DIR[0] && join(path, sizeof path, LMX_DEFAULT_DATA_DIR, rel)) {
        if (access(path, R_OK) == 0) goto found;
        size_t n = strlen(tried);
        snprintf(tried + n, sizeof tried - n, "%s%s", n ? ", " : "", path);
    }
    return lmx_err(LMX_ERR_IO, "%s: bundled data file not found (tried %s); set LMX_DATA_DIR to the "
                   "folder that holds it", rel, tried[0] ? tried : "nothing");

found:
    if (strlen(path) + 1 > cap) return lmx_err(LMX_ERR_ARG, "%s: path longer than %zu bytes", path, cap - 1);
    memcpy(out, path, strlen(path) + 1);
    return LMX_OK;
}
