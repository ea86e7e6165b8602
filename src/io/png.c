/*
 * png.c - PNG writer and reader on libpng (see png.h).
 *
 * libpng reports errors by longjmp. Every function that calls libpng is
 * split in two: an outer function owns all resources in a context struct
 * (libpng structs, row pointers, pixels, converted strings, the temporary
 * output file) and frees them on every path; an inner function does the
 * setjmp and the libpng calls and only writes to the context through a
 * pointer, so no automatic variable of the function that called setjmp is
 * modified between setjmp and longjmp (C11 7.13.2.1). libpng allocates
 * through lmx_malloc, so allocation-failure sweeps reach inside it and an
 * out-of-memory longjmp is reported as LMX_ERR_NOMEM.
 *
 * Text encoding follows the PNG spec and PIL: tEXt/zTXt are Latin-1, iTXt
 * is UTF-8.
 */
#include "io/png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "io/io_util.h"

typedef struct pngctx {
    const char *label;  /* path or buffer label, for messages */
    char errmsg[200];   /* libpng's last error */
    int oom;            /* an allocation failed inside libpng */
    int err;            /* errno when libpng reported its error */
    png_structp png;
    png_infop info;
    png_bytep *rows;
    /* writing */
    io_atomic out;
    png_text *texts;
    char **owned;       /* Latin-1 conversions, freed with the context */
    int n_texts;
    /* reading */
    const uint8_t *src;
    size_t src_n, src_pos;
    png_rgb8 img;
} pngctx;

static void on_error(png_structp png, png_const_charp msg) {
    pngctx *c = png_get_error_ptr(png);
    c->err = errno;
    snprintf(c->errmsg, sizeof c->errmsg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    lmx_debug("libpng: %s", msg ? msg : "");
}

/* No libpng allocation needs more than this (chunk data is capped at 64 MiB
 * by png_set_chunk_malloc_max; rows are at most 16384 x 8 bytes). */
#define PNG_ALLOC_MAX ((png_alloc_size_t)80 << 20)

static png_voidp on_malloc(png_structp png, png_alloc_size_t n) {
    pngctx *c = png_get_mem_ptr(png);
    void *p = n <= PNG_ALLOC_MAX ? lmx_malloc((size_t)n) : NULL;
    if (!p) c->oom = 1;
    return p;
}

static void on_free(png_structp png, png_voidp p) {
    (void)png;
    lmx_free(p);
}

/* Decode one UTF-8 sequence of valid UTF-8 text; returns its length. */
static size_t utf8_next(const uint8_t *s, uint32_t *cp) {
    if (s[0] < 0x80) return *cp = s[0], 1;
    if ((s[0] & 0xe0) == 0xc0) return *cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f), 2;
    if ((s[0] & 0xf0) == 0xe0)
        return *cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) |
                     (s[2] & 0x3f),
               3;
    return *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
                 ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f),
           4;
}

/* Valid UTF-8 -> Latin-1 (lmx_malloc), or NULL when a code point is above
 * U+00FF (*fits = 0) or on allocation failure (*fits = 1). */
static char *utf8_to_latin1(const char *s, int *fits) {
    size_t n = strlen(s);
    const uint8_t *u = (const uint8_t *)s;
    *fits = 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_next(u + i, &cp);
        if (cp > 0xff) {
            *fits = 0;
            return NULL;
        }
    }
    char *out = lmx_malloc(n + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_next(u + i, &cp);
        out[k++] = (char)cp;
    }
    out[k] = 0;
    return out;
}

static char *latin1_to_utf8(const char *s) {
    size_t n = strlen(s), extra = 0;
    for (size_t i = 0; i < n; i++) extra += (uint8_t)s[i] >= 0x80;
    char *out = lmx_malloc(n + extra + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c < 0x80) {
            out[k++] = (char)c;
        } else {
            out[k++] = (char)(0xc0 | (c >> 6));
            out[k++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out[k] = 0;
    return out;
}

/* A PNG keyword: 1-79 printable ASCII bytes, no leading, trailing or
 * double spaces (PNG spec 11.3.4.2, restricted to ASCII). */
static int valid_key(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 0x20 || k[i] > 0x7e) return 0;
        if (k[i] == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

static void ctx_free(pngctx *c, int writing) {
    if (c->png) {
        if (writing) png_destroy_write_struct(&c->png, &c->info);
        else png_destroy_read_struct(&c->png, &c->info, NULL);
    }
    lmx_free(c->rows);
    for (int i = 0; i < c->n_texts; i++) lmx_free(c->owned ? c->owned[i] : NULL);
    lmx_free(c->owned);
    lmx_free(c->texts);
    io_atomic_abort(&c->out);
    png_rgb8_free(&c->img);
}

/* ---- writing ------------------------------------------------------------ */

static lmx_status write_inner(pngctx *c, int width, int height) {
    if (setjmp(png_jmpbuf(c->png)))
        return c->oom ? lmx_err(LMX_ERR_NOMEM, "%s: out of memory writing PNG", c->label)
          : c->out.fp && ferror(c->out.fp) && c->err
              ? lmx_err(LMX_ERR_IO, "%s: cannot write PNG: %s", c->label, strerror(c->err))
              : lmx_err(LMX_ERR_IO, "%s: cannot write PNG: %s", c->label, c->errmsg);
    png_init_io(c->png, c->out.fp);
    png_set_IHDR(c->png, c->info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (c->n_texts) png_set_text(c->png, c->info, c->texts, c->n_texts);
    png_write_info(c->png, c->info);
    png_write_image(c->png, c->rows);
    png_write_end(c->png, NULL);
    return LMX_OK;
}

/* user: the rules of io_output_open (with `flags`) instead of io_atomic_open. */
static lmx_status write_png(const char *path, int user, unsigned flags, const uint8_t *rgb,
                            int width, int height, const png_kv *text, int n_text) {
    lmx_status st = LMX_OK;
    pngctx c;
    memset(&c, 0, sizeof c);
    c.label = path;
    if (width < 1 || height < 1 || width > PNG_RGB8_MAX_DIM || height > PNG_RGB8_MAX_DIM ||
        (uint64_t)width * (uint64_t)height > PNG_RGB8_MAX_PIXELS)
        return lmx_err(LMX_ERR_ARG, "%s: image size %dx%d is out of range (1..%d per side)", path,
                       width, height, PNG_RGB8_MAX_DIM);
    if (!rgb || n_text < 0 || (n_text && !text))
        return lmx_err(LMX_ERR_ARG, "%s: no pixels or bad text list", path);
    for (int i = 0; i < n_text; i++) {
        if (!text[i].key || !valid_key(text[i].key))
            return lmx_err(LMX_ERR_ARG, "%s: bad PNG text keyword '%s' (1-79 printable ASCII)",
                           path, text[i].key ? text[i].key : "(null)");
        if (!text[i].text || !io_utf8_valid((const uint8_t *)text[i].text, strlen(text[i].text)))
            return lmx_err(LMX_ERR_ARG, "%s: text of '%s' is not UTF-8", path, text[i].key);
    }
    c.rows = lmx_malloc(sizeof(png_bytep) * (size_t)height);
    c.texts = lmx_calloc((size_t)n_text + 1, sizeof(png_text));
    c.owned = lmx_calloc((size_t)n_text + 1, sizeof(char *));
    if (!c.rows || !c.texts || !c.owned) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int y = 0; y < height; y++) c.rows[y] = (png_bytep)(rgb + (size_t)y * (size_t)width * 3);
    for (int i = 0; i < n_text; i++) {
        png_text *t = &c.texts[i];
        c.n_texts = i + 1;
        t->key = (png_charp)text[i].key;
        int fits = 0;
        if (!text[i].utf8) {
            c.owned[i] = utf8_to_latin1(text[i].text, &fits);
            if (!c.owned[i] && fits) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
        }
        if (c.owned[i]) { /* tEXt, Latin-1 */
            t->compression = PNG_TEXT_COMPRESSION_NONE;
            t->text = c.owned[i];
            t->text_length = strlen(c.owned[i]);
        } else { /* iTXt, UTF-8, uncompressed */
            t->compression = PNG_ITXT_COMPRESSION_NONE;
            t->text = (png_charp)text[i].text;
            t->itxt_length = strlen(text[i].text);
            t->lang = (png_charp) "";
            t->lang_key = (png_charp) "";
        }
    }
    st = user ? io_output_open(&c.out, path, flags) : io_atomic_open(&c.out, path);
    if (st != LMX_OK) goto done;
    c.png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning, &c,
                                      on_malloc, on_free);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory (libpng)", path);
        goto done;
    }
    st = write_inner(&c, width, height);
    if (st == LMX_OK && c.oom) /* libpng got over a failed allocation */
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory writing PNG", path);
    if (st != LMX_OK) goto done;
    /* The libpng structs hold no reference to the file past png_write_end. */
    st = io_atomic_commit(&c.out);
done:
    ctx_free(&c, 1);
    return st;
}

lmx_status png_write_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                          const png_kv *text, int n_text) {
    return write_png(path, 0, 0, rgb, width, height, text, n_text);
}

lmx_status png_write_rgb8_out(const char *path, unsigned flags, const uint8_t *rgb, int width,
                              int height, const png_kv *text, int n_text) {
    return write_png(path, 1, flags, rgb, width, height, text, n_text);
}

/* user 0: png_write_loramix, 1: png_write_loramix_out with `flags`. */
static lmx_status write_loramix(const char *path, int user, unsigned flags, const uint8_t *rgb,
                                int width, int height, const char *parameters, const char *json) {
    char software[64];
    snprintf(software, sizeof software, "loramix %s", lmx_version());
    png_kv kv[3];
    int n = 0;
    kv[n++] = (png_kv){"Software", software, 0};
    if (parameters) kv[n++] = (png_kv){"parameters", parameters, 0};
    if (json) kv[n++] = (png_kv){"loramix", json, 1};
    return write_png(path, user, flags, rgb, width, height, kv, n);
}

lmx_status png_write_loramix(const char *path, const uint8_t *rgb, int width, int height,
                           const char *parameters, const char *json) {
    return write_loramix(path, 0, 0, rgb, width, height, parameters, json);
}

lmx_status png_write_loramix_out(const char *path, unsigned flags, const uint8_t *rgb, int width,
                                 int height, const char *parameters, const char *json) {
    return write_loramix(path, 1, flags, rgb, width, height, parameters, json);
}

/* ---- reading ------------------------------------------------------------ */

static void read_from_buffer(png_structp png, png_bytep dst, png_size_t n) {
    pngctx *c = png_get_io_ptr(png);
    if (n > c->src_n - c->src_pos) png_error(png, "file is truncated");
    memcpy(dst, c->src + c->src_pos, n);
    c->src_pos += n;
}

/* Copy the text chunks of c->info into c->img (UTF-8). */
static lmx_status collect_text(pngctx *c) {
    png_textp tp = NULL;
    int n = 0;
    png_get_text(c->png, c->info, &tp, &n);
    if (n <= 0) return LMX_OK;
    c->img.keys = lmx_calloc((size_t)n, sizeof(char *));
    c->img.texts = lmx_calloc((size_t)n, sizeof(char *));
    if (!c->img.keys || !c->img.texts) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", c->label);
    for (int i = 0; i < n; i++) {
        int itxt = tp[i].compression == PNG_ITXT_COMPRESSION_NONE ||
                   tp[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        const char *text = tp[i].text ? tp[i].text : "";
        c->img.keys[i] = latin1_to_utf8(tp[i].key ? tp[i].key : "");
        c->img.texts[i] = itxt ? lmx_strdup(text) : latin1_to_utf8(text);
        c->img.n_text = i + 1;
        if (!c->img.keys[i] || !c->img.texts[i])
            return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", c->label);
    }
    return LMX_OK;
}

static lmx_status read_inner(pngctx *c) {
    if (setjmp(png_jmpbuf(c->png)))
        return c->oom ? lmx_err(LMX_ERR_NOMEM, "%s: out of memory reading PNG", c->label)
                      : lmx_err(LMX_ERR_FORMAT, "%s: bad PNG: %s", c->label, c->errmsg);
    png_set_read_fn(c->png, c, read_from_buffer);
    png_set_user_limits(c->png, PNG_RGB8_MAX_DIM, PNG_RGB8_MAX_DIM);
    png_set_chunk_cache_max(c->png, 1000);           /* ancillary chunks kept   */
    png_set_chunk_malloc_max(c->png, 64u << 20);     /* one chunk, decompressed */
    png_read_info(c->png, c->info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if ((uint64_t)w * h > PNG_RGB8_MAX_PIXELS)
        return lmx_err(LMX_ERR_FORMAT, "%s: image of %ux%u pixels is too large", c->label,
                       (unsigned)w, (unsigned)h);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(c->png);
    if (depth == 16) png_set_strip_16(c->png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(c->png);
    png_set_strip_alpha(c->png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    if (png_get_rowbytes(c->png, c->info) != (size_t)w * 3 ||
        png_get_bit_depth(c->png, c->info) != 8 || png_get_channels(c->png, c->info) != 3)
        return lmx_err(LMX_ERR_FORMAT, "%s: cannot convert this PNG to 8-bit RGB", c->label);
    c->img.rgb = lmx_malloc((size_t)w * h * 3);
    c->rows = lmx_malloc(sizeof(png_bytep) * h);
    if (!c->img.rgb || !c->rows)
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory for %ux%u pixels", c->label,
                       (unsigned)w, (unsigned)h);
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->img.rgb + (size_t)y * w * 3;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, c->info); /* text chunks after the image data */
    c->img.width = (int)w;
    c->img.height = (int)h;
    return collect_text(c);
}

/* Walk the chunk list before libpng sees it: every chunk must fit in the
 * buffer, so no chunk length can make libpng allocate more than the input
 * (libpng allocates a chunk's declared size before reading it). */
static lmx_status check_chunks(const uint8_t *b, size_t n, const char *label) {
    size_t pos = 8;
    while (pos < n) {
        if (n - pos < 12)
            return lmx_err(LMX_ERR_FORMAT, "%s: bad PNG: file is truncated at byte %zu", label, pos);
        uint32_t len = (uint32_t)b[pos] << 24 | (uint32_t)b[pos + 1] << 16 |
                       (uint32_t)b[pos + 2] << 8 | b[pos + 3];
        char type[24];
        io_quote(type, sizeof type, (const char *)b + pos + 4, 4, 16);
        if (len > 0x7fffffffu || len > n - pos - 12)
            return lmx_err(LMX_ERR_FORMAT,
                           "%s: bad PNG: chunk '%s' at byte %zu claims %u bytes, past the end "
                           "of the file (truncated?)",
                           label, type, pos, (unsigned)len);
        if (!memcmp(b + pos + 4, "IEND", 4)) break;
        pos += 12 + (size_t)len;
    }
    return LMX_OK;
}

lmx_status png_read_rgb8_buffer(const void *buf, size_t n, const char *label, png_rgb8 *out) {
    lmx_status st = LMX_OK;
    pngctx c;
    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    c.label = label ? label : "<buffer>";
    c.src = buf;
    c.src_n = buf ? n : 0;
    if (c.src_n < 8 || png_sig_cmp((png_const_bytep)buf, 0, 8))
        return lmx_err(LMX_ERR_FORMAT, "%s: not a PNG file (bad signature)", c.label);
    st = check_chunks(c.src, c.src_n, c.label);
    if (st != LMX_OK) return st;
    c.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning, &c,
                                     on_malloc, on_free);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory (libpng)", c.label);
        goto done;
    }
    st = read_inner(&c);
    if (st == LMX_OK && c.oom) /* libpng skipped a chunk it had no memory for */
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory reading PNG", c.label);
    if (st != LMX_OK) goto done;
    *out = c.img; /* hand over the pixels and strings */
    memset(&c.img, 0, sizeof c.img);
done:
    ctx_free(&c, 0);
    return st;
}

lmx_status png_read_rgb8(const char *path, png_rgb8 *out) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t n = 0;
    /* A compressed 64 Mpx image is far below this. */
    lmx_status st = io_read_small(path, (size_t)1 << 30, &buf, &n);
    if (st != LMX_OK) return st;
    st = png_read_rgb8_buffer(buf, n, path, out);
    lmx_free(buf);
    return st;
}

const char *png_rgb8_text(const png_rgb8 *img, const char *key) {
    for (int i = 0; i < img->n_text; i++)
        if (!strcmp(img->keys[i], key)) return img->texts[i];
    return NULL;
}

void png_rgb8_free(png_rgb8 *img) {
    if (!img) return;
    for (int i = 0; i < img->n_text; i++) {
        lmx_free(img->keys[i]);
        lmx_free(img->texts[i]);
    }
    lmx_free(img->keys);
    lmx_free(img->texts);
    lmx_free(img->rgb);
    memset(img, 0, sizeof *img);
}
