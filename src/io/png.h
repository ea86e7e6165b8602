/*
 * png.h - PNG output (8-bit RGB, atomic) with text metadata, and a reader
 * for tests and tools (any PNG -> 8-bit RGB + its text chunks), on libpng.
 *
 * Text chunks: a key/value pair is written as a tEXt chunk when its text
 * fits Latin-1 (tEXt is Latin-1 by the PNG spec), otherwise as an
 * uncompressed iTXt chunk (UTF-8) - the rule PIL applies, so A1111's "PNG
 * Info", PIL's Image.info and exiftool read the same key either way. A pair
 * with utf8 = 1 is always iTXt. Chunks are written before the image data.
 * The chunks loramix writes are listed in docs/file-formats.md.
 *
 * Errors (libpng's longjmp ones included) come back as an lmx_status with
 * a message naming the file; nothing is leaked and, when writing a regular
 * file, nothing is left at `path` (temporary file + rename).
 *
 * Names: libpng owns the png_ prefix for its own API; ours are png_kv,
 * png_rgb8 and png_{write,read}_* functions that libpng does not define.
 */
#ifndef LMX_IO_PNG_H
#define LMX_IO_PNG_H

#include "core/core.h"

#define PNG_RGB8_MAX_DIM 16384            /* width or height        */
#define PNG_RGB8_MAX_PIXELS (1u << 26)    /* width x height (64 Mpx) */

typedef struct png_kv {
    const char *key;  /* 1-79 printable ASCII bytes, single inner spaces  */
    const char *text; /* UTF-8 */
    int utf8;         /* 1: always iTXt; 0: tEXt when the text fits Latin-1 */
} png_kv;

/* Write width x height 8-bit RGB pixels (rgb[(y * width + x) * 3 + c],
 * rows top to bottom) and n_text text chunks to `path`, atomically.
 * LMX_ERR_ARG for a bad size, key or non-UTF-8 text; LMX_ERR_IO when the
 * file cannot be written. */
lmx_status png_write_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                          const png_kv *text, int n_text);

/* The same for a file a user names: the rules of io_output_open in
 * io_util.h ("-" is stdout, devices and FIFOs are written directly, symlinks
 * are followed, an existing file needs IO_OUT_OVERWRITE in `flags`). */
lmx_status png_write_rgb8_out(const char *path, unsigned flags, const uint8_t *rgb, int width,
                              int height, const png_kv *text, int n_text);

/* The image files of loramix: tEXt "Software" ("loramix <version>"),
 * "parameters" (A1111-style generation text, tEXt or iTXt as above) and
 * iTXt "loramix" (a JSON document, UTF-8). parameters / json may be NULL. */
lmx_status png_write_loramix(const char *path, const uint8_t *rgb, int width, int height,
                           const char *parameters, const char *json);
lmx_status png_write_loramix_out(const char *path, unsigned flags, const uint8_t *rgb, int width,
                                 int height, const char *parameters, const char *json);

/* A decoded image: 8-bit RGB and every text chunk (tEXt/zTXt converted
 * from Latin-1 to UTF-8; iTXt as stored), in file order. */
typedef struct png_rgb8 {
    int width, height;
    uint8_t *rgb;   /* [height][width][3] */
    int n_text;
    char **keys;
    char **texts;
} png_rgb8;

/* Read any PNG (gray, palette, 16-bit, alpha, interlaced) as 8-bit RGB
 * (alpha dropped, 16-bit values truncated to their high byte). At most
 * PNG_RGB8_MAX_DIM per side and PNG_RGB8_MAX_PIXELS in all. A malformed
 * file is LMX_ERR_FORMAT naming it. *out is zeroed on error. */
lmx_status png_read_rgb8(const char *path, png_rgb8 *out);
/* The same from memory; `label` names the buffer in messages. */
lmx_status png_read_rgb8_buffer(const void *buf, size_t n, const char *label, png_rgb8 *out);
/* The text of the first chunk with this key, or NULL. */
const char *png_rgb8_text(const png_rgb8 *img, const char *key);
void png_rgb8_free(png_rgb8 *img);

#endif /* LMX_IO_PNG_H */
