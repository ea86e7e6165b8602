/*
 * tb_lock.c - the locks that let several runners share one output folder:
 * one per shard ({out}/.lock-shard-K-of-N, held for the whole run) and one
 * for the folder's manifest ({out}/.lock-manifest, held while it is read and
 * rewritten), plus the "is this process alive" test of the temp-file sweep.
 *
 * The locks are advisory fcntl locks on the whole file: open-file-description
 * locks (F_OFD_SETLK) on Linux, so two tb_run calls in one process exclude
 * each other too; classic per-process F_SETLK elsewhere. The kernel drops
 * them when the process ends, kill -9 included, so no lock is ever stale:
 * the lock file itself stays behind (it is reused) and only says who held it
 * last. fcntl locks also work on NFS (lockd), the usual shared storage of a
 * cluster.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testbed/testbed.h"

#ifdef F_OFD_SETLK
#define TB_SETLK F_OFD_SETLK
#define TB_SETLKW F_OFD_SETLKW
#define TB_GETLK F_OFD_GETLK
#else
#define TB_SETLK F_SETLK
#define TB_SETLKW F_SETLKW
#define TB_GETLK F_GETLK
#endif

/* The file system cannot lock (NFS without lockd, some FUSE mounts). */
static int no_locks(int err) {
    return err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL;
}

static int lock_fd(int fd, short type, int wait) {
    struct flock fl;
    memset(&fl, 0, sizeof fl); /* l_pid must be 0 for OFD locks */
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    int r;
    do
        r = fcntl(fd, wait ? TB_SETLKW : TB_SETLK, &fl);
    while (r != 0 && errno == EINTR);
    return r;
}

/* 1 when another open file (of this or another process) holds a lock on fd's file. */
static int lock_held(int fd) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, TB_GETLK, &fl) != 0) return 0;
    return fl.l_type != F_UNLCK;
}

/* The holder's note (the first line of the lock file), or "" if none. */
static void read_holder(const char *path, char *buf, size_t cap) {
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) n = 0;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
}

static void note_holder(int fd) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    char t[40];
    tb_iso_time(t, sizeof t);
    char buf[512];
    int n = snprintf(buf, sizeof buf, "pid %ld on %s since %s\n", (long)getpid(), host[0] ? host : "?", t);
    if (n < 0) return;
    if (ftruncate(fd, 0) != 0) return;
    ssize_t w = pwrite(fd, buf, (size_t)n, 0);
    (void)w; /* the note is informative only */
}

void tb_lock_init(tb_lock *l) {
    l->fd = -1;
    l->path = NULL;
}

void tb_unlock(tb_lock *l) {
    if (l->fd >= 0) close(l->fd); /* closing drops the lock */
    lmx_free(l->path);
    tb_lock_init(l);
}

static lmx_status open_lock(const char *path, int *fd) {
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (*fd < 0) return lmx_err(LMX_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    return LMX_OK;
}

lmx_status tb_lock_manifest(tb_lock *l, const char *out_dir) {
    tb_lock_init(l);
    l->path = tb_path(out_dir, ".lock-manifest", NULL);
    if (!l->path) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    lmx_status st = open_lock(l->path, &l->fd);
    if (st == LMX_OK && lock_fd(l->fd, F_WRLCK, 1) != 0 && !no_locks(errno))
        st = lmx_err(LMX_ERR_IO, "%s: cannot lock: %s", l->path, strerror(errno));
    if (st != LMX_OK) tb_unlock(l);
    return st;
}

static long gcd_l(long a, long b) {
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Shards k1/n1 and k2/n2 share a job index i iff i = k1-1 (mod n1) and
 * i = k2-1 (mod n2) has a solution: k1-1 = k2-1 (mod gcd(n1, n2)). */
static int shards_overlap(int k1, int n1, int k2, int n2) {
    long g = gcd_l(n1, n2);
    return (k1 - 1) % g == (k2 - 1) % g;
}

/* Another runner whose shard overlaps k/n and holds its lock: its lock path
 * (lmx_free) in *other, else NULL. */
static lmx_status find_overlap(const char *out_dir, int k, int n, char **other) {
    *other = NULL;
    DIR *d = opendir(out_dir);
    if (!d) return lmx_err(LMX_ERR_IO, "%s: cannot list the folder: %s", out_dir, strerror(errno));
    struct dirent *e;
    lmx_status st = LMX_OK;
    while (!*other && (e = readdir(d))) {
        int k2 = 0, n2 = 0, used = 0;
        if (sscanf(e->d_name, ".lock-shard-%d-of-%d%n", &k2, &n2, &used) != 2 || e->d_name[used]) continue;
        if (n2 < 1 || k2 < 1 || k2 > n2 || (k2 == k && n2 == n) || !shards_overlap(k, n, k2, n2)) continue;
        char *path = tb_path(out_dir, e->d_name, NULL);
        if (!path) {
            st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
            break;
        }
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd >= 0 && lock_held(fd))
            *other = path;
        else
            lmx_free(path);
        if (fd >= 0) close(fd);
    }
    closedir(d);
    return st;
}

/* Wait until the lock on `path` is released (take a shared lock, drop it). */
static void wait_released(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return;
    lock_fd(fd, F_RDLCK, 1);
    close(fd);
}

lmx_status tb_lock_shard(tb_lock *l, const char *out_dir, int k, int n, int wait, FILE *msg) {
    tb_lock_init(l);
    char name[64];
    snprintf(name, sizeof name, ".lock-shard-%d-of-%d", k, n);
    l->path = tb_path(out_dir, name, NULL);
    if (!l->path) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    lmx_status st = LMX_OK;
    char holder[512];
    for (int said = 0;;) {
        if ((st = open_lock(l->path, &l->fd)) != LMX_OK) break;
        if (lock_fd(l->fd, F_WRLCK, 0) != 0) {
            if (no_locks(errno)) {
                if (msg)
                    fprintf(msg,
                            "loramix: warning: %s: the file system cannot lock files (%s); nothing stops a "
                            "second runner of shard %d/%d here\n",
                            out_dir, strerror(errno), k, n);
                return LMX_OK;
            }
            if (errno != EAGAIN && errno != EACCES) {
                st = lmx_err(LMX_ERR_IO, "%s: cannot lock: %s", l->path, strerror(errno));
                break;
            }
            read_holder(l->path, holder, sizeof holder);
            if (!wait) {
                st = lmx_err(LMX_ERR_IO,
                             "%s: shard %d/%d is being run by another runner (%s; lock %s); let it finish, "
                             "or pass --wait to wait for it",
                             out_dir, k, n, holder[0] ? holder : "holder unknown", l->path);
                break;
            }
            if (msg && !said++)
                fprintf(msg, "shard %d/%d of %s is being run by another runner (%s); waiting for it\n", k, n,
                        out_dir, holder[0] ? holder : "holder unknown");
            if (msg) fflush(msg);
            if (lock_fd(l->fd, F_WRLCK, 1) != 0) {
                st = lmx_err(LMX_ERR_IO, "%s: cannot lock: %s", l->path, strerror(errno));
                break;
            }
        }
        /* Ours. A runner of an overlapping shard (another N) would compute
         * the same jobs: refuse, or let go of ours while waiting for it. */
        char *other = NULL;
        if ((st = find_overlap(out_dir, k, n, &other)) != LMX_OK) break;
        if (!other) {
            note_holder(l->fd);
            return LMX_OK;
        }
        read_holder(other, holder, sizeof holder);
        if (!wait) {
            st = lmx_err(LMX_ERR_IO,
                         "%s: another runner holds %s (%s), whose jobs overlap those of shard %d/%d; "
                         "every shard of a folder must use the same N (or pass --wait to wait for it)",
                         out_dir, other, holder[0] ? holder : "holder unknown", k, n);
            lmx_free(other);
            break;
        }
        if (msg)
            fprintf(msg, "%s is held by another runner (%s), whose jobs overlap shard %d/%d; waiting for it\n",
                    other, holder[0] ? holder : "holder unknown", k, n);
        close(l->fd);
        l->fd = -1;
        wait_released(other);
        lmx_free(other);
        said = 1;
    }
    tb_unlock(l);
    return st;
}

int tb_pid_alive(long pid) {
    if (pid <= 0 || (pid_t)pid != pid) return 0;
    if (pid == (long)getpid()) return 1;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}
