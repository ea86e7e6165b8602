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
#include <limits.h>
#include <time.h>
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

static lmx_status commit_direct(io_atomic *a);
static lmx_status commit_no_replace(io_atomic *a);

lmx_status io_atomic_commit(io_atomic *a) {
    if (a->direct) return commit_direct(a);
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
    if (a->no_replace) {
        st = commit_no_replace(a);
        if (st != LMX_OK) goto done;
    } else if (rename(a->tmp, a->path) != 0) {
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
    if (a->fp && a->fp != stdout) fclose(a->fp);
    else if (a->fp) fflush(a->fp);
    if (a->tmp) unlink(a->tmp);
    lmx_free(a->tmp);
    lmx_free(a->path);
    memset(a, 0, sizeof *a);
}

/* ---- files a user names ----------------------------------------------- */

/* Linking the finished temporary file to the final name fails when a file
 * appeared there meanwhile, so a file is never replaced without
 * IO_OUT_OVERWRITE. File systems without hard links fall back to a check
 * and a rename. On success the temporary name is gone. */
static lmx_status commit_no_replace(io_atomic *a) {
    if (link(a->tmp, a->path) == 0) {
        unlink(a->tmp);
        return LMX_OK;
    }
    if (errno == EEXIST)
        return lmx_err(LMX_ERR_IO, "%s: a file appeared there while writing; not replaced", a->path);
    struct stat sb;
    if (lstat(a->path, &sb) == 0)
        return lmx_err(LMX_ERR_IO, "%s: a file appeared there while writing; not replaced", a->path);
    if (rename(a->tmp, a->path) != 0)
        return lmx_err(LMX_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(errno));
    return LMX_OK;
}

/* A device, FIFO or standard output: flush (and close, except stdout). */
static lmx_status commit_direct(io_atomic *a) {
    lmx_status st = LMX_OK;
    FILE *fp = a->fp;
    a->fp = NULL;
    int bad = fflush(fp) != 0 || ferror(fp);
    int err = errno;
    if (fp != stdout && fclose(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) st = lmx_err(LMX_ERR_IO, "%s: cannot write: %s", a->path, strerror(err));
    io_atomic_abort(a);
    return st;
}

enum { OUT_STDOUT, OUT_DIRECT, OUT_REPLACE, OUT_NEW };

typedef struct out_plan {
    int kind;
    char *target;  /* after following symlinks (lmx_malloc) */
    char *dir;     /* its folder (lmx_malloc), for OUT_REPLACE / OUT_NEW */
    struct stat sb; /* of the target, when it exists */
} out_plan;

static void plan_free(out_plan *pl) {
    lmx_free(pl->target);
    lmx_free(pl->dir);
    memset(pl, 0, sizeof *pl);
}

/* The folder of `path` ("." when it has no slash), lmx_malloc. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return lmx_strdup(".");
    if (slash == path) return lmx_strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = lmx_malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Decide how `path` is written (see io_util.h); nothing is created. */
static lmx_status out_plan_make(const char *path, unsigned flags, out_plan *pl) {
    memset(pl, 0, sizeof *pl);
    if (!path || !*path) return lmx_err(LMX_ERR_ARG, "empty output path");
    if (!strcmp(path, "-")) {
        if (isatty(STDOUT_FILENO))
            return lmx_err(LMX_ERR_IO, "-: standard output is a terminal; redirect it to a file "
                                       "or a pipe to receive the PNG");
        pl->kind = OUT_STDOUT;
        pl->target = lmx_strdup("standard output");
        return pl->target ? LMX_OK : lmx_err(LMX_ERR_NOMEM, "out of memory");
    }
    if (strlen(path) >= PATH_MAX)
        return lmx_err(LMX_ERR_IO, "%.80s...: path is longer than %d bytes", path, PATH_MAX - 1);
    /* A device or FIFO, possibly behind links (/dev/stdout is a link to
     * /proc/self/fd/1, whose "target" is no path): opened by the given name. */
    if (stat(path, &pl->sb) == 0 && (S_ISCHR(pl->sb.st_mode) || S_ISFIFO(pl->sb.st_mode))) {
        pl->kind = OUT_DIRECT;
        pl->target = lmx_strdup(path);
        return pl->target ? LMX_OK : lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    char *cur = lmx_strdup(path);
    if (!cur) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    int exists = 0;
    for (int hops = 0;; hops++) {
        if (lstat(cur, &pl->sb) != 0) {
            if (errno != ENOENT) {
                lmx_status st =
                    errno == ENAMETOOLONG
                        ? lmx_err(LMX_ERR_IO, "%.80s...: a name in this path is longer than the "
                                              "file system allows (%zu bytes in all)", cur, strlen(cur))
                    : errno == ENOTDIR
                        ? lmx_err(LMX_ERR_IO, "%s: a part of this path is a file, not a folder", cur)
                        : lmx_err(LMX_ERR_IO, "%s: cannot write there: %s", cur, strerror(errno));
                lmx_free(cur);
                return st;
            }
            break;
        }
        if (!S_ISLNK(pl->sb.st_mode)) {
            exists = 1;
            break;
        }
        char link[PATH_MAX];
        ssize_t n = hops < 40 ? readlink(cur, link, sizeof link - 1) : -1;
        if (n < 0) {
            lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot follow the symbolic link: %s", cur,
                                    hops < 40 ? strerror(errno) : "more than 40 links");
            lmx_free(cur);
            return st;
        }
        link[n] = 0;
        char *next;
        if (link[0] == '/' || !strchr(cur, '/')) {
            next = lmx_strdup(link);
        } else { /* relative to the link's folder */
            size_t dl = (size_t)(base_of(cur) - cur);
            next = lmx_malloc(dl + (size_t)n + 1);
            if (next) {
                memcpy(next, cur, dl);
                memcpy(next + dl, link, (size_t)n + 1);
            }
        }
        lmx_free(cur);
        cur = next;
        if (!cur) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        if (strlen(cur) >= PATH_MAX) {
            lmx_free(cur);
            return lmx_err(LMX_ERR_IO, "%s: the symbolic link's target is too long", path);
        }
    }
    pl->target = cur;
    const char *t = cur;
    if (exists) {
        mode_t m = pl->sb.st_mode;
        if (S_ISCHR(m) || S_ISFIFO(m)) { /* appeared since the stat above */
            pl->kind = OUT_DIRECT;
            return LMX_OK;
        }
        lmx_status st = LMX_OK;
        if (S_ISDIR(m))
            st = lmx_err(LMX_ERR_IO, "%s: is a folder; name a file inside it", t);
        else if (!S_ISREG(m))
            st = lmx_err(LMX_ERR_IO, "%s: is a %s; only files, character devices and FIFOs are "
                                     "written", t, S_ISBLK(m) ? "block device" : "socket");
        else if (!(flags & IO_OUT_OVERWRITE))
            st = lmx_err(LMX_ERR_IO, "%s: already exists; not replaced (pass --overwrite to "
                                     "replace it, or choose another name)", t);
        else if (!(m & 0222) || access(t, W_OK) != 0)
            st = lmx_err(LMX_ERR_IO, "%s: is read-only; not replaced even with --overwrite "
                                     "(make it writable first, e.g. chmod u+w)", t);
        if (st != LMX_OK) {
            plan_free(pl);
            return st;
        }
        pl->kind = OUT_REPLACE;
    } else {
        pl->kind = OUT_NEW;
    }
    const char *base = base_of(t);
    pl->dir = dir_of(t);
    if (!pl->dir) {
        plan_free(pl);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    lmx_status st = LMX_OK;
    struct stat ds;
    if (!*base) {
        st = lmx_err(LMX_ERR_IO, "%s: names a folder; name a file inside it", t);
    } else if (stat(pl->dir, &ds) != 0) {
        st = errno == ENOENT
                 ? lmx_err(LMX_ERR_IO, "%s: folder '%s' does not exist (create it first)", t, pl->dir)
                 : lmx_err(LMX_ERR_IO, "%s: folder '%s': %s", t, pl->dir, strerror(errno));
    } else if (!S_ISDIR(ds.st_mode)) {
        st = lmx_err(LMX_ERR_IO, "%s: '%s' is not a folder", t, pl->dir);
    } else {
        long name_max = pathconf(pl->dir, _PC_NAME_MAX);
        if (name_max > 0 && strlen(base) > (size_t)name_max)
            st = lmx_err(LMX_ERR_IO, "%.60s...: the file name is %zu bytes, more than the %ld this "
                                     "file system allows", t, strlen(base), name_max);
    }
    if (st != LMX_OK) plan_free(pl);
    return st;
}

/* Create a new temporary file ".lmx-XXXXXXXX" in `dir` with `mode` (the
 * umask applies); *tmp is its name (lmx_malloc). Returns the descriptor,
 * -1 (errno set; *tmp NULL) or -2 when out of memory. */
static int tmp_create(const char *dir, mode_t mode, char **tmp) {
    static unsigned long counter = 0;
    size_t dl = strlen(dir);
    *tmp = lmx_malloc(dl + 32);
    if (!*tmp) return -2;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
                     ((uint64_t)__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) << 20);
        x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
        char name[9];
        for (int i = 0; i < 8; i++, x /= 36) name[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36];
        name[8] = 0;
        snprintf(*tmp, dl + 32, "%s/.lmx-%s", dir, name);
        fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int err = errno;
        lmx_free(*tmp);
        *tmp = NULL;
        errno = err;
    }
    return fd;
}

lmx_status io_output_check(const char *path, unsigned flags) {
    out_plan pl;
    lmx_status st = out_plan_make(path, flags, &pl);
    if (st != LMX_OK) return st;
    if (pl.kind == OUT_DIRECT && access(pl.target, W_OK) != 0) {
        st = lmx_err(LMX_ERR_IO, "%s: cannot write: %s", pl.target, strerror(errno));
    } else if (pl.kind == OUT_REPLACE || pl.kind == OUT_NEW) {
        char *tmp = NULL;
        int fd = tmp_create(pl.dir, 0600, &tmp);
        if (fd == -2) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", pl.target);
        } else if (fd < 0) {
            st = lmx_err(LMX_ERR_IO, "%s: cannot create a file in folder '%s': %s", pl.target,
                         pl.dir, strerror(errno));
        } else {
            close(fd);
            unlink(tmp);
            lmx_free(tmp);
        }
    }
    plan_free(&pl);
    return st;
}

lmx_status io_output_open(io_atomic *a, const char *path, unsigned flags) {
    memset(a, 0, sizeof *a);
    out_plan pl;
    lmx_status st = out_plan_make(path, flags, &pl);
    if (st != LMX_OK) return st;
    a->path = pl.target;
    pl.target = NULL;
    int fd = -1;
    if (pl.kind == OUT_STDOUT) {
        a->fp = stdout;
        a->direct = 1;
        plan_free(&pl);
        return LMX_OK;
    }
    if (pl.kind == OUT_DIRECT) {
        fd = open(a->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        a->direct = 1;
        if (fd < 0) st = lmx_err(LMX_ERR_IO, "%s: cannot open: %s", a->path, strerror(errno));
    } else {
        mode_t mode = pl.kind == OUT_REPLACE ? 0600 : 0666;
        fd = tmp_create(pl.dir, mode, &a->tmp);
        if (fd == -2) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", a->path);
        } else if (fd < 0) {
            st = lmx_err(LMX_ERR_IO, "%s: cannot create a temporary file in folder '%s': %s",
                         a->path, pl.dir, strerror(errno));
        } else if (pl.kind == OUT_REPLACE) {
            /* Keep the replaced file's permissions, and its owner where allowed. */
            if ((pl.sb.st_uid != geteuid() || pl.sb.st_gid != getegid()) &&
                fchown(fd, pl.sb.st_uid, pl.sb.st_gid) != 0) {
                /* not allowed (not root): the new file is ours */
            }
            if (fchmod(fd, pl.sb.st_mode & 0777) != 0)
                st = lmx_err(LMX_ERR_IO, "%s: cannot set the permissions: %s", a->path, strerror(errno));
        }
        a->no_replace = !(flags & IO_OUT_OVERWRITE);
    }
    plan_free(&pl);
    if (st == LMX_OK) {
        a->fp = fdopen(fd, "wb");
        if (!a->fp) st = lmx_err(LMX_ERR_IO, "%s: %s", a->path, strerror(errno));
    }
    if (st != LMX_OK) {
        if (fd >= 0 && !a->fp) close(fd);
        io_atomic_abort(a);
    }
    return st;
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
