/*
 * test_fuzz_regressions.c - replays every file of fuzz/corpus/<target>/ and
 * fuzz/regressions/<target>/ through the fuzz targets' own bodies
 * (fuzz/targets.h) in the normal build, so each fuzzing finding stays a
 * regression case after its bug is fixed (scripts/fuzz.sh adds findings;
 * this test keeps them). A body returning non-zero, or a crash, fails.
 */
#include <dirent.h>
#include <string.h>

#include "../../fuzz/targets.h"
#include "harness.h"

typedef int (*fuzz_body)(const uint8_t *, size_t);

static int replay_dir(const char *rel, fuzz_body body) {
    const char *dir = lmx_src_path(rel);
    DIR *d = opendir(dir);
    if (!d) return 0; /* no findings yet */
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *buf = NULL;
        size_t size = 0;
        lmx_status st = lmx_read_file(path, &buf, &size, (size_t)64 << 20);
        if (st == LMX_ERR_IO && strstr(lmx_errmsg(), "not a regular file")) continue;
        CHECK(st == LMX_OK, "%s: %s", path, lmx_errmsg());
        if (st != LMX_OK) continue;
        /* An exact-size copy, so a sanitizer build sees reads past the end. */
        uint8_t *copy = lmx_malloc(size ? size : 1);
        if (copy) {
            memcpy(copy, buf, size);
            CHECK(body(copy, size) == 0, "%s: an invariant does not hold", path);
            lmx_free(copy);
        }
        lmx_free(buf);
        n++;
    }
    closedir(d);
    return n;
}

int main(void) {
    static const struct {
        const char *name;
        fuzz_body body;
    } targets[] = {
        {"fuzz_safetensors", fuzz_safetensors_body},
        {"fuzz_png", fuzz_png_body},
    };
    int total = 0;
    for (size_t i = 0; i < LMX_ARRAY_LEN(targets); i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "fuzz/corpus/%s", targets[i].name);
        int nc = replay_dir(rel, targets[i].body);
        snprintf(rel, sizeof rel, "fuzz/regressions/%s", targets[i].name);
        int nr = replay_dir(rel, targets[i].body);
        printf("%s: %d corpus files, %d regression files\n", targets[i].name, nc, nr);
        CHECK(nc > 0, "%s: the seed corpus is empty", targets[i].name);
        total += nc + nr;
    }
    CHECK(total > 0, "nothing replayed");
    return lmx_test_finish();
}
