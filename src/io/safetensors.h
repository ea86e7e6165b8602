/*
 * safetensors.h - reader (mmap, zero-copy, fully validated) and writer.
 *
 * Format (huggingface/safetensors): u64 little-endian header length N, then N
 * bytes of UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}, then the
 * raw little-endian tensor bytes; offsets are relative to the end of the
 * header.
 *
 * The reader trusts nothing: header length (overflow, a sane maximum, inside
 * the file), JSON well-formed, every entry an object with the three keys,
 * known dtype, shape of non-negative integers whose product does not
 * overflow, data_offsets inside the data area, end - begin = dtype size x
 * product of shape, no two tensors overlapping, no duplicate names.
 * Any violation is an LMX_ERR_FORMAT naming the file and the tensor; a
 * dtype the format knows but loramix does not read (F64, U8, BOOL, F8_E4M3,
 * ...) is an LMX_ERR_UNSUPPORTED naming the tensor and the dtype. A file that
 * cannot be opened is an LMX_ERR_IO. Details in docs/file-formats.md.
 *
 * Alignment: files written by old safetensors versions (and some other
 * tools) do not pad the header, so a tensor's data may start at any byte.
 * Such files are accepted, so t->data may be misaligned for its dtype:
 * never cast it to float * / int32_t * without checking st_data_aligned().
 * st_to_f32 / st_to_i64 read any alignment (through memcpy). st_writer
 * always writes aligned files (header padded to 8 bytes, data ordered by
 * decreasing element size, as the reference writer does).
 *
 * Coverage: as the reference reader requires, the tensors must cover the
 * whole data area: a gap (bytes no tensor references) before the first
 * tensor, between two tensors or after the last one is an LMX_ERR_FORMAT
 * naming the tensors on either side and the byte offsets. ST_ALLOW_GAPS
 * accepts such files (loramix never reads the unreferenced bytes). Zero-size
 * tensors may sit anywhere inside the data area (the reference wants them at
 * the running offset too).
 *
 * Lenient where it is harmless: a shape entry such as 2.0 that is an exact
 * integer is read as 2.
 */
#ifndef LMX_SAFETENSORS_H
#define LMX_SAFETENSORS_H

#include "core/core.h"

typedef enum st_dtype {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_I64,
    ST_DTYPE_COUNT
} st_dtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1024u * 1024u) /* 100 MiB of JSON at most */

typedef struct st_tensor {
    const char *name;              /* NUL-terminated, owned by the file      */
    st_dtype dtype;
    int ndim;                      /* 0 for a scalar                         */
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;                 /* product of shape (1 for a scalar)      */
    const void *data;              /* points into the mapping (read-only)    */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Map and validate a file. On error *out is NULL and the message names the
 * file. The mapping lives until st_close; the file must not be truncated
 * while it is open (reading a mapped page past the new end raises SIGBUS). */
lmx_status st_open(st_file **out, const char *path);
/* The same over a caller-owned buffer (no copy; for fuzzing and tests).
 * `label` names the buffer in error messages. */
lmx_status st_open_buffer(st_file **out, const void *buf, size_t n, const char *label);
/* st_open / st_open_buffer with ST_* flags (0 = st_open). */
#define ST_ALLOW_GAPS 1u /* accept unreferenced bytes in the data area */
lmx_status st_open_flags(st_file **out, const char *path, unsigned flags);
lmx_status st_open_buffer_flags(st_file **out, const void *buf, size_t n, const char *label, unsigned flags);
void st_close(st_file *f);
/* Tell the kernel the mapped pages are not needed now (madvise DONTNEED):
 * they leave the resident set and are read again from the file on the next
 * access. For weights already converted into packed kernels. */
void st_drop_pages(const st_file *f);
/* The same for the whole pages inside [p, p + n) of f's mapping. */
void st_drop_range(const st_file *f, const void *p, size_t n);                                  /* NULL is a no-op */

const char *st_path(const st_file *f);
int st_count(const st_file *f);
uint64_t st_file_size(const st_file *f);                    /* bytes, whole file */
uint64_t st_header_size(const st_file *f);                  /* bytes of JSON     */
/* Name and offset comparisons the open made validating the header (sorts,
 * duplicate and overlap checks): a count of work for tests, O(n log n). */
uint64_t st_open_compares(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);            /* file header order */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent */

/* __metadata__ entries (string values only, as the format requires). */
int st_meta_count(const st_file *f);
void st_meta_at(const st_file *f, int i, const char **key, const char **value);
const char *st_meta_get(const st_file *f, const char *key); /* NULL if absent */

const char *st_dtype_name(st_dtype t);  /* "F32", ... */
size_t st_dtype_size(st_dtype t);

/* 1 when t->data is aligned for its dtype (see "Alignment" above). */
int st_data_aligned(const st_tensor *t);

/* Convert a float tensor (F32, F16, BF16) to fp32 into dst[numel]; the
 * source may be misaligned. An integer tensor is an LMX_ERR_FORMAT naming
 * the tensor. */
lmx_status st_to_f32(const st_tensor *t, float *dst);
/* Convert an integer tensor (I32, I64) to int64 into dst[numel]; a float
 * tensor is an LMX_ERR_FORMAT naming the tensor. */
lmx_status st_to_i64(const st_tensor *t, int64_t *dst);
/* As above into a fresh lmx_alloc_aligned buffer (free with lmx_free). */
lmx_status st_to_f32_alloc(const st_tensor *t, float **out);
/* Check the shape of t exactly; the error names the key and both shapes. */
lmx_status st_check_shape(const st_tensor *t, int ndim, const int64_t *shape);
/* "[320, 4, 3, 3]" */
void st_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* ---- writer ----
 * Tensors are added in order and listed in the header in that order (the
 * data is copied at st_writer_add time; the data area is ordered by
 * decreasing element size so every tensor is aligned). Names and metadata
 * must be valid UTF-8; a name added twice, "__metadata__" as a name, a bad
 * rank, dtype or shape are LMX_ERR_ARG. st_writer_meta on an existing key
 * replaces its value. st_writer_finish streams the file atomically (temp +
 * fsync + rename) and may be called more than once. */
typedef struct st_writer st_writer;
lmx_status st_writer_create(st_writer **out);
lmx_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                         const int64_t *shape, const void *data);
lmx_status st_writer_meta(st_writer *w, const char *key, const char *value);
lmx_status st_writer_finish(st_writer *w, const char *path);
void st_writer_free(st_writer *w);

#endif /* LMX_SAFETENSORS_H */
