/*
 * test_png.c - PNG writer and reader: pixel and text round trips (ASCII,
 * Latin-1 -> tEXt, other UTF-8 -> iTXt, forced iTXt), the chunk types
 * actually written, the loramix image layout (Software, parameters,
 * loramix), reading gray / palette / 16-bit / alpha / interlaced files,
 * argument errors, hostile input (bad signature, truncation at every byte,
 * corrupted bytes, oversized IHDR), atomic output, an allocation-failure
 * sweep through libpng's longjmp error paths, and the rules for files a
 * user names (io_output_open).
 */
#include <png.h>
#include <setjmp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "io/io_util.h"
#include "io/png.h"

static char g_dir[512];

static const char *tmp_path(const char *name) {
    static char buf[4][640];
    static int k = 0;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static uint8_t *read_all(const char *path, size_t *n) {
    char *buf = NULL;
    if (lmx_read_file(path, &buf, n, 1 << 26) != LMX_OK) return NULL;
    return (uint8_t *)buf;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The type ("tEXt", "iTXt", ...) of the text chunk whose keyword is `key`,
 * and whether it comes before IDAT; "" when absent. */
static const char *chunk_of(const uint8_t *png, size_t n, const char *key, int *before_idat) {
    static char type[5];
    type[0] = 0;
    size_t kl = strlen(key);
    int seen_idat = 0;
    for (size_t p = 8; p + 12 <= n;) {
        uint32_t len = be32(png + p);
        const uint8_t *t = png + p + 4, *d = png + p + 8;
        if (!memcmp(t, "IDAT", 4)) seen_idat = 1;
        if ((!memcmp(t, "tEXt", 4) || !memcmp(t, "iTXt", 4) || !memcmp(t, "zTXt", 4)) &&
            len > kl && !memcmp(d, key, kl) && d[kl] == 0) {
            memcpy(type, t, 4);
            type[4] = 0;
            *before_idat = !seen_idat;
            return type;
        }
        if (len > n) break;
        p += 12 + (size_t)len;
    }
    return type;
}

static uint8_t *random_rgb(int w, int h, uint64_t seed) {
    uint8_t *px = lmx_malloc((size_t)w * h * 3);
    lmx_prng r = {seed};
    for (size_t i = 0; px && i < (size_t)w * h * 3; i++) px[i] = (uint8_t)(lmx_prng_next(&r) >> 56);
    return px;
}

static void test_roundtrip(void) {
    const int w = 37, h = 23;
    uint8_t *px = random_rgb(w, h, 1);
    if (!px) return;
    const char *ascii = "a photo of a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                        "CFG scale: 7.5, Seed: 42, Size: 512x512";
    const char *latin1 = "caf\xc3\xa9 cr\xc3\xa8me \xc2\xa9 \xc3\xbf";          /* fits Latin-1 */
    const char *utf8 = "\xe2\x9c\x93 \xe7\x8c\xab \xf0\x9f\x8e\xa8 caf\xc3\xa9"; /* does not */
    const char *json = "{\"prompt\":\"\xe7\x8c\xab \\\"quoted\\\"\",\"seed\":42}";
    png_kv kv[] = {
        {"parameters", ascii, 0}, {"Latin", latin1, 0}, {"Wide", utf8, 0},
        {"loramix", json, 1},     {"Forced ascii", "plain", 1}, {"Empty", "", 0},
    };
    const char *path = tmp_path("roundtrip.png");
    CHECK_OK(png_write_rgb8(path, px, w, h, kv, (int)LMX_ARRAY_LEN(kv)));

    size_t n = 0;
    uint8_t *raw = read_all(path, &n);
    if (raw) {
        int before = 0;
        CHECK(!strcmp(chunk_of(raw, n, "parameters", &before), "tEXt") && before,
              "parameters is tEXt before IDAT");
        CHECK(!strcmp(chunk_of(raw, n, "Latin", &before), "tEXt"), "Latin-1 text is tEXt");
        CHECK(!strcmp(chunk_of(raw, n, "Wide", &before), "iTXt"), "wide text is iTXt");
        CHECK(!strcmp(chunk_of(raw, n, "loramix", &before), "iTXt") && before,
              "loramix is iTXt before IDAT");
        CHECK(!strcmp(chunk_of(raw, n, "Forced ascii", &before), "iTXt"), "forced iTXt");
        /* tEXt holds Latin-1 bytes: "caf\xe9". */
        static const char want[] = "Latin\0caf\xe9 cr\xe8me \xa9 \xff";
        int found = 0;
        for (size_t i = 0; i + sizeof want - 1 <= n && !found; i++)
            found = !memcmp(raw + i, want, sizeof want - 1);
        CHECK(found, "tEXt stores Latin-1 bytes");
        lmx_free(raw);
    }

    png_rgb8 img;
    CHECK_OK(png_read_rgb8(path, &img));
    CHECK(img.width == w && img.height == h, "size %dx%d", img.width, img.height);
    CHECK(img.rgb && !memcmp(img.rgb, px, (size_t)w * h * 3), "pixels round trip");
    CHECK(img.n_text == (int)LMX_ARRAY_LEN(kv), "n_text %d", img.n_text);
    for (size_t i = 0; i < LMX_ARRAY_LEN(kv); i++) {
        const char *got = png_rgb8_text(&img, kv[i].key);
        CHECK(got && !strcmp(got, kv[i].text), "text '%s': got '%s'", kv[i].key,
              got ? got : "(none)");
    }
    CHECK(img.n_text > 0 && !strcmp(img.keys[0], "parameters"), "file order");
    CHECK(png_rgb8_text(&img, "missing") == NULL, "missing key");
    png_rgb8_free(&img);
    png_rgb8_free(&img); /* idempotent */

    /* The loramix layout. */
    const char *lpath = tmp_path("loramix.png");
    CHECK_OK(png_write_loramix(lpath, px, w, h, utf8, json));
    CHECK_OK(png_read_rgb8(lpath, &img));
    const char *sw = png_rgb8_text(&img, "Software");
    CHECK(sw && !strncmp(sw, "loramix ", 8), "Software: %s", sw ? sw : "(none)");
    CHECK(png_rgb8_text(&img, "parameters") && !strcmp(png_rgb8_text(&img, "parameters"), utf8),
          "parameters");
    CHECK(png_rgb8_text(&img, "loramix") && !strcmp(png_rgb8_text(&img, "loramix"), json),
          "loramix json");
    png_rgb8_free(&img);
    CHECK_OK(png_write_loramix(lpath, px, w, h, NULL, NULL));
    CHECK_OK(png_read_rgb8(lpath, &img));
    CHECK(img.n_text == 1, "only Software: %d", img.n_text);
    png_rgb8_free(&img);

    /* 1x1 and a tall thin image. */
    CHECK_OK(png_write_rgb8(path, px, 1, 1, NULL, 0));
    CHECK_OK(png_read_rgb8(path, &img));
    CHECK(img.width == 1 && img.height == 1 && !memcmp(img.rgb, px, 3), "1x1");
    png_rgb8_free(&img);
    lmx_free(px);
    unlink(path);
    unlink(lpath);
}

/* Write a PNG with libpng's low-level API (any color type, depth, interlace). */
static int write_custom(const char *path, int w, int h, int color, int depth, int interlace,
                        const uint8_t *pixels, int channels) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int bpc = depth == 16 ? 2 : 1;
    png_bytep *volatile rows = lmx_malloc(sizeof(png_bytep) * (size_t)h);
    volatile int ok = 0;
    if (png && info && rows && !setjmp(png_jmpbuf(png))) {
        png_init_io(png, fp);
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        if (color == PNG_COLOR_TYPE_PALETTE) {
            png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
            png_set_PLTE(png, info, pal, 4);
        }
        png_write_info(png, info);
        for (int y = 0; y < h; y++)
            rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)w * (size_t)channels * (size_t)bpc);
        png_write_image(png, rows);
        png_write_end(png, NULL);
        ok = 1;
    }
    png_destroy_write_struct(&png, &info);
    lmx_free(rows);
    fclose(fp);
    return ok;
}

static void test_read_conversions(void) {
    const char *path = tmp_path("conv.png");
    enum { W = 5, H = 4 };
    uint8_t g8[W * H], ga[W * H * 2], rgba[W * H * 4], pal[W * H], g16[W * H * 2],
        rgb16[W * H * 6];
    for (int i = 0; i < W * H; i++) {
        g8[i] = (uint8_t)(i * 12);
        ga[2 * i] = (uint8_t)(i * 12), ga[2 * i + 1] = 7;
        for (int c = 0; c < 4; c++) rgba[4 * i + c] = (uint8_t)(i * 10 + c);
        pal[i] = (uint8_t)(i % 4);
        g16[2 * i] = (uint8_t)(i * 12), g16[2 * i + 1] = 0xff; /* big-endian 16-bit */
        for (int c = 0; c < 3; c++) rgb16[6 * i + 2 * c] = (uint8_t)(i + 40 * c), rgb16[6 * i + 2 * c + 1] = 0x80;
    }
    static const uint8_t palette[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    struct {
        const char *what;
        int color, depth, interlace, channels;
        const uint8_t *px;
    } cases[] = {
        {"gray8", PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, 1, g8},
        {"gray8 interlaced", PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_ADAM7, 1, g8},
        {"gray+alpha", PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, 2, ga},
        {"rgba", PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_ADAM7, 4, rgba},
        {"palette", PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, 1, pal},
        {"gray16", PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, 1, g16},
        {"rgb16", PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_ADAM7, 3, rgb16},
    };
    for (size_t k = 0; k < LMX_ARRAY_LEN(cases); k++) {
        if (!write_custom(path, W, H, cases[k].color, cases[k].depth, cases[k].interlace,
                          cases[k].px, cases[k].channels)) {
            CHECK(0, "%s: cannot write the test file", cases[k].what);
            continue;
        }
        png_rgb8 img;
        CHECK_OK(png_read_rgb8(path, &img));
        if (!img.rgb) continue;
        int bad = 0;
        for (int i = 0; i < W * H; i++) {
            uint8_t want[3];
            switch (k) {
            case 0: case 1: want[0] = want[1] = want[2] = g8[i]; break;
            case 2: want[0] = want[1] = want[2] = ga[2 * i]; break;
            case 3: for (int c = 0; c < 3; c++) want[c] = rgba[4 * i + c]; break;
            case 4: memcpy(want, palette[pal[i]], 3); break;
            case 5: want[0] = want[1] = want[2] = g16[2 * i]; break;
            default: for (int c = 0; c < 3; c++) want[c] = rgb16[6 * i + 2 * c]; break;
            }
            bad += memcmp(img.rgb + 3 * i, want, 3) != 0;
        }
        CHECK(bad == 0 && img.width == W && img.height == H, "%s: %d pixels differ",
              cases[k].what, bad);
        png_rgb8_free(&img);
    }
    unlink(path);
}

static void test_write_errors(void) {
    uint8_t px[12] = {0};
    const char *path = tmp_path("err.png");
    CHECK(png_write_rgb8(path, px, 0, 1, NULL, 0) == LMX_ERR_ARG, "width 0");
    CHECK(strstr(lmx_errmsg(), path), "msg names the path: %s", lmx_errmsg());
    CHECK(png_write_rgb8(path, px, 1, -3, NULL, 0) == LMX_ERR_ARG, "negative height");
    CHECK(png_write_rgb8(path, px, 20000, 1, NULL, 0) == LMX_ERR_ARG, "too wide");
    CHECK(png_write_rgb8(path, NULL, 1, 1, NULL, 0) == LMX_ERR_ARG, "no pixels");
    const char *bad_keys[] = {"", " lead", "trail ", "two  spaces", "ctl\x01",
                              "non-ascii \xc3\xa9",
                              "0123456789012345678901234567890123456789012345678901234567890123456789012345678X9"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(bad_keys); i++) {
        png_kv kv = {bad_keys[i], "x", 0};
        CHECK(png_write_rgb8(path, px, 2, 2, &kv, 1) == LMX_ERR_ARG, "key '%s'", bad_keys[i]);
    }
    png_kv bad_text = {"parameters", "bad \xff utf8", 0};
    CHECK(png_write_rgb8(path, px, 2, 2, &bad_text, 1) == LMX_ERR_ARG, "non-UTF-8 text");
    CHECK(strstr(lmx_errmsg(), "parameters") && strstr(lmx_errmsg(), path), "msg: %s",
          lmx_errmsg());
    struct stat sb;
    CHECK(stat(path, &sb) != 0, "nothing written on argument errors");

    const char *nodir = tmp_path("no-such-dir/x.png");
    CHECK(png_write_rgb8(nodir, px, 2, 2, NULL, 0) == LMX_ERR_IO, "unwritable");
    CHECK(strstr(lmx_errmsg(), nodir), "msg: %s", lmx_errmsg());

    /* A failed write leaves an existing file untouched. */
    CHECK_OK(png_write_rgb8(path, px, 2, 2, NULL, 0));
    size_t n0 = 0, n1 = 0;
    uint8_t *before = read_all(path, &n0);
    png_kv kv = {"bad key  ", "x", 0};
    CHECK(png_write_rgb8(path, px, 2, 2, &kv, 1) == LMX_ERR_ARG, "bad key");
    uint8_t *after = read_all(path, &n1);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0), "file untouched");
    lmx_free(before);
    lmx_free(after);
    unlink(path);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void test_hostile(void) {
    const char *path = tmp_path("hostile.png");
    uint8_t *px = random_rgb(8, 8, 2);
    png_kv kv[] = {{"parameters", "p", 0}, {"loramix", "{\"a\":1}", 1}};
    CHECK_OK(png_write_rgb8(path, px, 8, 8, kv, 2));
    size_t n = 0;
    uint8_t *file = read_all(path, &n);
    lmx_free(px);
    if (!file) return;
    png_rgb8 img;

    CHECK(png_read_rgb8_buffer("GIF89a..", 8, "notpng", &img) == LMX_ERR_FORMAT, "signature");
    CHECK(strstr(lmx_errmsg(), "notpng") && strstr(lmx_errmsg(), "signature"), "msg: %s",
          lmx_errmsg());
    CHECK(png_read_rgb8_buffer(NULL, 0, NULL, &img) == LMX_ERR_FORMAT, "empty");
    CHECK(png_read_rgb8(tmp_path("missing.png"), &img) == LMX_ERR_IO, "missing file");
    CHECK(png_read_rgb8(g_dir, &img) == LMX_ERR_IO, "directory");

    /* Truncation at every byte: a clean error naming the file, no leak. */
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = lmx_malloc(cut ? cut : 1);
        if (!copy) break;
        memcpy(copy, file, cut);
        lmx_status st = png_read_rgb8_buffer(copy, cut, "cut.png", &img);
        if (st != LMX_ERR_FORMAT || img.rgb || !strstr(lmx_errmsg(), "cut.png")) {
            if (bad++ < 3)
                fprintf(stderr, "truncated at %zu/%zu: %s: %s\n", cut, n, lmx_status_name(st),
                        lmx_errmsg());
        }
        png_rgb8_free(&img);
        lmx_free(copy);
    }
    CHECK(bad == 0, "%d truncations not refused", bad);

    /* Every byte set to 0x00 / 0xff / +1: never a crash. */
    uint8_t *copy = lmx_malloc(n);
    int opened = 0;
    for (size_t i = 0; copy && i < n; i++) {
        for (int v = 0; v < 3; v++) {
            memcpy(copy, file, n);
            copy[i] = v == 0 ? 0 : v == 1 ? 0xff : (uint8_t)(copy[i] + 1);
            if (png_read_rgb8_buffer(copy, n, "flip.png", &img) == LMX_OK) opened++;
            else CHECK(strstr(lmx_errmsg(), "flip.png"), "msg: %s", lmx_errmsg());
            png_rgb8_free(&img);
        }
    }
    lmx_free(copy);

    /* An IHDR claiming 100000 x 100000 (valid CRC): refused before allocating. */
    uint8_t big[80];
    memcpy(big, file, 33); /* signature + IHDR */
    put_be32(big + 16, 100000);
    put_be32(big + 20, 100000);
    put_be32(big + 29, (uint32_t)crc32(0, big + 12, 17));
    memcpy(big + 33, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    CHECK(png_read_rgb8_buffer(big, 45, "big.png", &img) == LMX_ERR_FORMAT, "huge IHDR");
    CHECK(strstr(lmx_errmsg(), "big.png"), "msg: %s", lmx_errmsg());
    put_be32(big + 16, 16384);
    put_be32(big + 20, 16384);
    put_be32(big + 29, (uint32_t)crc32(0, big + 12, 17));
    /* An empty IDAT so the header is read through; then IEND. */
    memcpy(big + 33, "\0\0\0\0IDAT", 8);
    put_be32(big + 41, (uint32_t)crc32(0, (const uint8_t *)"IDAT", 4));
    memcpy(big + 45, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    CHECK(png_read_rgb8_buffer(big, 57, "big2.png", &img) == LMX_ERR_FORMAT, "16384^2 > cap");
    CHECK(strstr(lmx_errmsg(), "too large"), "msg: %s", lmx_errmsg());
    lmx_free(file);
    unlink(path);
}

static int count_leftovers(void) {
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -1A '%s' 2>/dev/null | grep -c -e '[.]tmp[.]' -e '^[.]lmx-'",
             g_dir);
    FILE *p = popen(cmd, "r");
    int c = 0;
    if (p) {
        if (fscanf(p, "%d", &c) != 1) c = 0;
        pclose(p);
    }
    return c;
}

/* Allocation failure at every allocation of a write and a read. */
static void test_alloc_sweep(void) {
    const int w = 16, h = 9;
    uint8_t *px = random_rgb(w, h, 3);
    if (!px) return;
    const char *path = tmp_path("sweep.png");
    png_kv kv[] = {{"parameters", "caf\xc3\xa9", 0}, {"loramix", "{\"\xe2\x9c\x93\":1}", 1}};
    lmx_fault_set_fail_at(0);
    CHECK_OK(png_write_rgb8(path, px, w, h, kv, 2));
    long total = lmx_fault_alloc_count();
    unlink(path);
    int bad = 0;
    for (long k = 1; k <= total; k++) {
        lmx_fault_set_fail_at(k);
        lmx_status st = png_write_rgb8(path, px, w, h, kv, 2);
        lmx_fault_set_fail_at(0);
        struct stat sb;
        int exists = stat(path, &sb) == 0;
        if (st != LMX_ERR_NOMEM || exists || !strstr(lmx_errmsg(), path)) {
            if (bad++ < 3)
                fprintf(stderr, "write, allocation %ld/%ld fails: %s: %s (file %s)\n", k, total,
                        lmx_status_name(st), lmx_errmsg(), exists ? "exists" : "absent");
        }
        unlink(path);
    }
    CHECK(bad == 0, "%d write sweeps failed (of %ld)", bad, total);
    CHECK(count_leftovers() == 0, "temporary files left behind");

    CHECK_OK(png_write_rgb8(path, px, w, h, kv, 2));
    png_rgb8 img;
    lmx_fault_set_fail_at(0);
    CHECK_OK(png_read_rgb8(path, &img));
    total = lmx_fault_alloc_count();
    png_rgb8_free(&img);
    bad = 0;
    for (long k = 1; k <= total; k++) {
        lmx_fault_set_fail_at(k);
        lmx_status st = png_read_rgb8(path, &img);
        lmx_fault_set_fail_at(0);
        if (st != LMX_ERR_NOMEM || img.rgb || !strstr(lmx_errmsg(), path)) {
            if (bad++ < 3)
                fprintf(stderr, "read, allocation %ld/%ld fails: %s: %s\n", k, total,
                        lmx_status_name(st), lmx_errmsg());
        }
        png_rgb8_free(&img);
    }
    CHECK(bad == 0, "%d read sweeps failed (of %ld)", bad, total);
    unlink(path);
    lmx_free(px);
}

/* Files a user names (png_write_rgb8_out / io_output_open): a file that
 * appears while the image is written is not replaced without
 * IO_OUT_OVERWRITE, a failed allocation leaves nothing, and the check
 * refuses what the writer refuses. */
static void test_user_output(void) {
    const int w = 8, h = 4;
    uint8_t *px = random_rgb(w, h, 5);
    if (!px) return;
    const char *path = tmp_path("user.png");
    unlink(path);
    CHECK_OK(io_output_check(path, 0));
    io_atomic a;
    CHECK_OK(io_output_open(&a, path, 0));
    CHECK_OK(io_atomic_write(&a, "new", 3));
    CHECK_OK(lmx_write_file_atomic(path, "planted", 7)); /* appears meanwhile */
    CHECK(io_atomic_commit(&a) == LMX_ERR_IO && strstr(lmx_errmsg(), "appeared"), "race: %s",
          lmx_errmsg());
    size_t n = 0;
    uint8_t *got = read_all(path, &n);
    CHECK(got && n == 7 && !memcmp(got, "planted", 7), "the file that appeared was replaced");
    lmx_free(got);
    CHECK(io_output_check(path, 0) == LMX_ERR_IO && strstr(lmx_errmsg(), "already exists"),
          "check: %s", lmx_errmsg());
    CHECK(png_write_rgb8_out(path, 0, px, w, h, NULL, 0) == LMX_ERR_IO, "existing file replaced");
    CHECK_OK(io_output_check(path, IO_OUT_OVERWRITE));
    CHECK_OK(png_write_rgb8_out(path, IO_OUT_OVERWRITE, px, w, h, NULL, 0));
    png_rgb8 img;
    CHECK_OK(png_read_rgb8(path, &img));
    CHECK(img.width == w && img.height == h && !memcmp(img.rgb, px, (size_t)w * h * 3), "pixels");
    png_rgb8_free(&img);
    unlink(path);

    /* Allocation failures on the user-output path leave no file behind. */
    lmx_fault_set_fail_at(0);
    CHECK_OK(png_write_rgb8_out(path, 0, px, w, h, NULL, 0));
    long total = lmx_fault_alloc_count();
    unlink(path);
    int bad = 0;
    for (long k = 1; k <= total; k++) {
        lmx_fault_set_fail_at(k);
        lmx_status st = png_write_rgb8_out(path, 0, px, w, h, NULL, 0);
        lmx_fault_set_fail_at(0);
        struct stat sb;
        if (st != LMX_ERR_NOMEM || stat(path, &sb) == 0) {
            if (bad++ < 3) fprintf(stderr, "user output, allocation %ld fails: %s: %s\n", k, lmx_status_name(st), lmx_errmsg());
        }
        unlink(path);
    }
    CHECK(bad == 0, "%d user-output write sweeps failed (of %ld)", bad, total);
    CHECK(count_leftovers() == 0, "temporary files left behind");
    lmx_free(px);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/tests/png_unit_%ld", LMX_BINARY_DIR, (long)getpid());
    mkdir(g_dir, 0755);
    test_roundtrip();
    test_read_conversions();
    test_write_errors();
    test_hostile();
    test_alloc_sweep();
    test_user_output();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
    return lmx_test_finish();
}
