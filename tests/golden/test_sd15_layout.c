/*
 * test_sd15_layout.c - the loader on the real SD1.5 single-file layout
 * without committing 2 GB: a sparse, all-zero checkpoint is written with the
 * names, dtypes and shapes of tests/fixtures/models/sd15_ldm_keys.json
 * (reference/gen_models.py --sd15-parity: every UNet/VAE/text-encoder key
 * of SD1.5 in the original layout, checked in Python against diffusers'
 * own LDM converters, plus the EMA/schedule/position_ids extras real files
 * carry). It must load with every key mapped and shape-checked, no
 * unexpected-tensor warning, and SD1.5's configs inferred from the shapes.
 * Builds the full fp32 model (about 4.3 GB plus the mapped file).
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "model/sd_model.h"

static char g_warn[4096];
static void warn_cb(lmx_log_level lv, const char *msg, void *u) {
    (void)u;
    if (lv <= LMX_LOG_WARN) snprintf(g_warn + strlen(g_warn), sizeof g_warn - strlen(g_warn), "%s\n", msg);
}

/* Write a sparse safetensors file with the tensors of the JSON list; returns 1 on success. */
static int write_sparse(const char *json_path, const char *out) {
    char *txt = NULL;
    int ok = 0;
    if (lmx_read_file(json_path, &txt, NULL, 8u << 20)) return 0;
    cJSON *root = cJSON_Parse(txt), *list = root ? cJSON_GetObjectItem(root, "tensors") : NULL;
    size_t cap = 1u << 20, len = 0;
    char *h = lmx_malloc(cap);
    uint64_t off = 0;
    if (!list || !h) goto done;
    len += (size_t)snprintf(h + len, cap - len, "{");
    for (int i = 0; i < cJSON_GetArraySize(list); i++) {
        cJSON *e = cJSON_GetArrayItem(list, i), *shape = cJSON_GetArrayItem(e, 2);
        const char *name = cJSON_GetArrayItem(e, 0)->valuestring, *dt = cJSON_GetArrayItem(e, 1)->valuestring;
        uint64_t n = strcmp(dt, "F16") == 0 ? 2 : strcmp(dt, "I64") == 0 ? 8 : 4;
        char sh[128];
        size_t sl = (size_t)snprintf(sh, sizeof sh, "[");
        for (int k = 0; k < cJSON_GetArraySize(shape); k++) {
            n *= (uint64_t)cJSON_GetArrayItem(shape, k)->valuedouble;
            sl += (size_t)snprintf(sh + sl, sizeof sh - sl, "%s%d", k ? "," : "", cJSON_GetArrayItem(shape, k)->valueint);
        }
        snprintf(sh + sl, sizeof sh - sl, "]");
        if (cap - len < 512) goto done;
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%llu,%llu]}",
                                i ? "," : "", name, dt, sh, (unsigned long long)off, (unsigned long long)(off + n));
        off += n;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) goto done;
    uint64_t hl = len;
    uint8_t le[8];
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(hl >> (8 * k));
    ok = write(fd, le, 8) == 8 && write(fd, h, len) == (ssize_t)len && ftruncate(fd, (off_t)(8 + len + off)) == 0;
    close(fd);
done:
    lmx_free(h);
    cJSON_Delete(root);
    lmx_free(txt);
    return ok;
}

static void sparse_checkpoint(void) {
    char path[] = "/tmp/lmx_sd15_sparse_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    close(fd);
    double t = lmx_now();
    CHECK(write_sparse(lmx_src_path("tests/fixtures/models/sd15_ldm_keys.json"), path), "sparse file");
    sd_model *m = NULL;
    g_warn[0] = 0;
    lmx_log_set(LMX_LOG_WARN, warn_cb, NULL);
    CHECK_OK(sd_model_load(&m, path, NULL));
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    CHECK(g_warn[0] == 0, "warnings on a complete SD1.5 checkpoint: %s", g_warn);
    if (m) {
        const unet_config *u = unet_cfg(m->unet);
        unet_config r = unet_config_sd15();
        CHECK(u->n_levels == 4 && u->layers_per_block == 2 && u->cross_dim == 768 && u->heads[0] == 8 &&
                  !u->linear_proj && u->groups == 32,
              "SD1.5 UNet config not inferred");
        for (int i = 0; i < 4; i++)
            CHECK(u->ch[i] == r.ch[i] && u->down_attn[i] == r.down_attn[i] && u->up_attn[i] == r.up_attn[i],
                  "level %d", i);
        const clip_text_config *c = clip_text_cfg(m->text);
        CHECK(c->hidden == 768 && c->layers == 12 && c->heads == 12 && c->intermediate == 3072 && c->vocab == 49408,
              "SD1.5 text config not inferred");
        const vae_config *v = vae_cfg(m->vae);
        CHECK(v->n_levels == 4 && v->ch[0] == 128 && v->ch[3] == 512 && v->layers_per_block == 2 && vae_has_encoder(m->vae),
              "SD1.5 VAE config not inferred");
        printf("SD1.5 single-file layout (sparse, %d+%d+%d layers): loaded in %.1f s\n", unet_layers(m->unet)->n,
               clip_text_layers(m->text)->n, vae_layers(m->vae)->n, lmx_now() - t);
    }
    sd_model_free(m);
    unlink(path);
}

int main(void) {
    double t0 = lmx_now();
    sparse_checkpoint();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("time %.1f s, peak RSS %.2f GB\n", lmx_now() - t0, (double)ru.ru_maxrss / (1024.0 * 1024.0));
    return lmx_test_finish();
}
