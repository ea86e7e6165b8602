/*
 * io_util.c - atomic output files, non-blocking input opens, message quoting,
 * UTF-8 validation and the cJSON allocator hook (see io_util.h).
 *
 * The atomic writer follows the usual POSIX recipe (write a temporary file in
 * the target directory, fsync, rename over the target), which is what
 * lmx_write_file_atomic does for whole buffers; this variant streams through
 * a FILE* so large files (safetensors, PNG through libpng) are never held in
 * memory twice.
 */
#include "io/io_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- atomic output ---------------------------------------------------- */

lmx_status io_atomic_open(io_atomic *a, const char *path) {
    static unsigned long counter = 0;
    memset(a, 0, sizeof *a);
    size_t plen = strlen(path);
    if (plen == 0) return lmx_err(LMX_ERR_ARG, "empty output path");
    a->path = lmx_strdup(path);
    a->tmp = lmx_malloc(plen + 64);
    if (!a->path || !a->tmp) {
        io_atomic_abort(a);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        unsigned long n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        snprintf(a->tmp, plen + 64, "%s.tmp.%ld.%lu", path, (long)getpid(), n);
        fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot create a temporary file next to it: %s",
                                path, strerror(errno));
        lmx_free(a->tmp); /* nothing was created: do not unlink */
        a->tmp = NULL;
        io_atomic_abort(a);
        return st;
    }
    a->fp = fdopen(fd, "wb");
    if (!a->fp) {
        lmx_status st = lmx_err(LMX_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        io_atomic_abort(a);
        return st;
    }
    return LMX_OK;
}

lmx_status io_atomic_write(io_atomic *a, const void *data, size_t n) {
    if (n == 0) return LMX_OK;
    if (fwrite(data, 1, n, a->fp) != n)
        return lmx_err(LMX_ERR_IO, "%s: write failed: %s", a->path, strerror(errno));
    return LMX_OK;
}

lmx_status io_atomic_commit(io_atomic *a) {
    lmx_status st = LMX_OK;
    FILE *fp = a->fp;
    a->fp = NULL;
    int bad = fflush(fp) != 0;
    if (!bad) bad = fsync(fileno(fp)) != 0;
    int err = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        st = lmx_err(LMX_ERR_IO, "%s: cannot write: %s", a->path, strerror(err));
        goto done;
    }
    if (rename(a->tmp, a->path) != 0) {
        st = lmx_err(LMX_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(errno));
        goto done;
    }
    lmx_free(a->tmp); /* renamed: nothing to remove */
    a->tmp = NULL;
done:
    io_atomic_abort(a);
    return st;
}

void io_atomic_abort(io_atomic *a) {
    if (a->fp) fclose(a->fp);
    if (a->tmp) unlink(a->tmp);
    lmx_free(a->tmp);
    lmx_free(a->path);
    memset(a, 0, sizeof *a);
}

/* ---- input files ------------------------------------------------------ */

int io_open_regular(const char *path, uint64_t *size, lmx_status *st) {
    *st = LMX_OK;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *st = lmx_err(LMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        *st = lmx_err(LMX_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        *st = lmx_err(LMX_ERR_IO, "%s: is a directory, not a file", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        *st = lmx_err(LMX_ERR_IO, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* Back to blocking reads for a regular file (harmless either way). */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *size = (uint64_t)sb.st_size;
    return fd;
}

lmx_status io_read_small(const char *path, size_t max_size, char **out, size_t *n_out) {
    *out = NULL;
    if (n_out) *n_out = 0;
    uint64_t size;
    lmx_status st;
    int fd = io_open_regular(path, &size, &st);
    if (fd < 0) return st;
    if (size > max_size) {
        close(fd);
        return lmx_err(LMX_ERR_FORMAT, "%s: file is %llu bytes, more than the %zu allowed", path,
                       (unsigned long long)size, max_size);
    }
    size_t n = (size_t)size;
    char *buf = lmx_malloc(n + 1);
    if (!buf) {
        close(fd);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        lmx_free(buf);
        return lmx_err(LMX_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    if (n_out) *n_out = n;
    return LMX_OK;
}

/* ---- messages --------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t j = 1; j < len; j++) {
        if ((s[j] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[j] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int io_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

char *io_quote(char *buf, size_t bufsize, const char *s, size_t len, size_t max_chars) {
    if (bufsize == 0) return buf;
    const uint8_t *u = (const uint8_t *)s;
    size_t k = 0, i = 0;
    if (bufsize < 8) {
        buf[0] = 0;
        return buf;
    }
    size_t limit = LMX_MIN(max_chars, bufsize - 8); /* room for "\xNN" and "..." */
    while (i < len && k < limit) {
        uint8_t c = u[i];
        size_t l = c >= 0x80 ? utf8_seq(u + i, len - i) : 1;
        if (c < 0x20 || c == 0x7f || l == 0) {
            if (k + 4 > limit) break;
            snprintf(buf + k, bufsize - k, "\\x%02x", c);
            k += 4;
            i++;
        } else {
            if (k + l > limit) break;
            memcpy(buf + k, u + i, l);
            k += l;
            i += l;
        }
    }
    if (i < len) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = 0;
    return buf;
}

/* ---- cJSON ------------------------------------------------------------ */

static _Thread_local int g_cjson_oom = 0;

static void *cjson_malloc(size_t n) {
    void *p = lmx_malloc(n);
    if (!p) g_cjson_oom = 1;
    return p;
}

void io_cjson_oom_clear(void) { g_cjson_oom = 0; }
int io_cjson_oom(void) { return g_cjson_oom; }

static void cjson_free(void *p) { lmx_free(p); }

static void cjson_hooks_once(void) {
    cJSON_Hooks h = {cjson_malloc, cjson_free};
    cJSON_InitHooks(&h);
}

void io_cjson_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cjson_hooks_once);
}
