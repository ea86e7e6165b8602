/*
 * io_util.h - small helpers shared by the file readers and writers of src/io:
 * atomic output files (temp file + fsync + rename), opening input files
 * without blocking on FIFOs or devices, quoting untrusted strings for
 * one-line error messages, strict UTF-8 checking, and routing cJSON's
 * allocations through lmx_malloc (so fault-injection sweeps cover it).
 */
#ifndef LMX_IO_UTIL_H
#define LMX_IO_UTIL_H

#include <stdio.h>

#include "core/core.h"

/* ---- atomic output ----
 * io_atomic_open creates "<path>.tmp.<pid>.<n>" in the same directory and
 * gives a FILE* to write to; io_atomic_commit flushes, fsyncs and renames it
 * over `path`; io_atomic_abort (also safe after a commit or a failed open)
 * closes and removes the temporary file. Nothing half-written is ever left
 * at `path`. Errors name `path`. */
typedef struct io_atomic {
    FILE *fp;
    char *tmp;   /* temporary file name (lmx_malloc); NULL when writing directly */
    char *path;  /* final name (lmx_malloc): the target after following symlinks */
    int direct;  /* io_output_open: fp writes the target itself (device, FIFO, stdout) */
    int no_replace; /* io_output_open: the target must not exist at commit */
} io_atomic;

lmx_status io_atomic_open(io_atomic *a, const char *path);

/* ---- files a user names (loramix generate -o; docs/file-formats.md) ----
 * io_output_open applies these rules, then io_atomic_write/commit/abort
 * work as above:
 *  - "-" is standard output (flushed at commit, never closed); refused when
 *    it is a terminal;
 *  - a symlink is followed (up to 40 links, relative ones from the link's
 *    folder): its target is written, the link stays;
 *  - a character device or FIFO is opened and written directly (no
 *    temporary file; a FIFO's open waits for a reader, like `>` in a shell);
 *    block devices, sockets and directories are refused;
 *  - an existing regular file is refused unless IO_OUT_OVERWRITE; with it,
 *    a file without write permission (no w bit, or not writable by this
 *    user) is still refused; a replaced file keeps its permission bits (and
 *    its owner when this user may set it);
 *  - a new file gets 0666 & ~umask; regular files are written to a short
 *    temporary name (".lmx-XXXXXXXX") in the target's folder and renamed,
 *    so names up to the file system's limit work and nothing half-written
 *    is left. Without IO_OUT_OVERWRITE the final step never replaces a file
 *    that appeared meanwhile (link + unlink where the file system allows).
 * io_output_check makes the same checks without writing anything (it
 * creates and removes a temporary file to prove the folder is writable):
 * run it before long work. Errors are LMX_ERR_IO naming the path. */
#define IO_OUT_OVERWRITE 1u
lmx_status io_output_open(io_atomic *a, const char *path, unsigned flags);
lmx_status io_output_check(const char *path, unsigned flags);
lmx_status io_atomic_write(io_atomic *a, const void *data, size_t n);
lmx_status io_atomic_commit(io_atomic *a);
void io_atomic_abort(io_atomic *a);

/* ---- input files ----
 * Open `path` read-only without blocking (a FIFO or device is refused, not
 * waited on) and check that it is a regular file. Returns the descriptor and
 * its size, or -1 with an LMX_ERR_IO message naming the path in *st. */
int io_open_regular(const char *path, uint64_t *size, lmx_status *st);
/* Read a whole regular file of at most max_size bytes, NUL-terminated
 * (lmx_free it). Refuses FIFOs and devices instead of blocking. */
lmx_status io_read_small(const char *path, size_t max_size, char **out, size_t *n_out);

/* ---- messages ----
 * Copy an untrusted string into buf for an error message: control bytes and
 * invalid UTF-8 become \xNN, at most ~max_chars bytes are kept (then "...").
 * Always NUL-terminates; returns buf. */
char *io_quote(char *buf, size_t bufsize, const char *s, size_t len, size_t max_chars);

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). 1 when valid. */
int io_utf8_valid(const uint8_t *s, size_t n);

/* Install lmx_malloc/lmx_free as cJSON's allocator (once, thread-safe).
 * Every module that parses JSON with cJSON calls this first. */
void io_cjson_init(void);
/* This thread's "a cJSON allocation failed" flag: clear it before a parse,
 * read it when cJSON_Parse returns NULL to tell out-of-memory from bad JSON. */
void io_cjson_oom_clear(void);
int io_cjson_oom(void);

#endif /* LMX_IO_UTIL_H */
