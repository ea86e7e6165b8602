/*
 * tb_util.c - small file and string helpers of the testbed module: mkdir -p
 * (safe when several shards create the same folders at once), path joining,
 * UTC timestamps for the run log, and the CRC-32 (zlib's, the PNG one) that
 * sidecars record for their image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "testbed/testbed.h"

lmx_status tb_mkdirs(const char *dir) {
    size_t n = strlen(dir);
    char *buf = lmx_malloc(n + 1);
    if (!buf) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
    memcpy(buf, dir, n + 1);
    lmx_status st = LMX_OK;
    for (size_t i = 1; i <= n && st == LMX_OK; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            st = lmx_err(LMX_ERR_IO, "%s: cannot create the folder: %s", buf, strerror(errno));
        else {
            struct stat sb;
            if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
                st = lmx_err(LMX_ERR_IO, "%s: exists and is not a folder", buf);
        }
        buf[i] = c;
    }
    lmx_free(buf);
    return st;
}

char *tb_strdup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = lmx_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *tb_path(const char *a, const char *b, const char *ext) {
    size_t na = strlen(a);
    while (na > 1 && a[na - 1] == '/')
        na--;
    return tb_strdup_printf("%.*s/%s%s", (int)na, a, b, ext ? ext : "");
}

void tb_iso_time(char *buf, size_t cap) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t t = tv.tv_sec;
    gmtime_r(&t, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", date, (int)(tv.tv_usec / 1000));
}

lmx_status tb_file_crc32(const char *path, uint32_t *crc, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return lmx_err(LMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lmx_err(LMX_ERR_IO, "%s: not a regular file", path);
    }
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    unsigned char buf[65536];
    lmx_status st = LMX_OK;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = lmx_err(LMX_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        c = crc32(c, buf, (uInt)r);
        total += (uint64_t)r;
    }
    close(fd);
    if (st == LMX_OK) {
        if (crc) *crc = (uint32_t)c;
        if (size) *size = total;
    }
    return st;
}

double tb_f2d(float x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)x);
    return strtod(buf, NULL);
}
