/*
 * test_lora_keys.c - LoRA key formats, target lists and diffusers' scaling
 * rules, without running any network.
 *
 *   - the config-only target enumeration equals the loaded tiny model's
 *     layers (paths, kinds, shapes, conv geometry);
 *   - on SD1.5's list: kohya keys in both UNet dialects (diffusers and LDM,
 *     incl. downsamplers "input_blocks_3_0_op", upsamplers
 *     "output_blocks_2_1_conv" / "output_blocks_5_2_conv", resnet leaves,
 *     time_embed, out_2), kohya TE keys, PEFT keys, older diffusers spellings
 *     (processor.to_q_lora, to_out_lora, lora_linear_layer, lora.down),
 *     PEFT prefixes, TE paths without "text_model.", and keys that must not
 *     resolve (naive '_' -> '.' guesses, SDXL-only blocks, misspellings);
 *   - refused kinds recognised by key (LyCORIS, DoRA, SDXL);
 *   - diffusers 0.32.2's scale for files without alpha and non-uniform
 *     ranks (alpha = first module's rank, per component order), checked
 *     against values diffusers printed for the same file (lora.md).
 */
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lora/lora_impl.h"

static char g_path[1024];
static const char *tmp_path(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/tests/lora_unit_%ld_%s", LMX_BINARY_DIR, (long)getpid(), name);
    return g_path;
}

static void check_enumeration(void) {
    sd_model *m = NULL;
    lora_targets *a = NULL, *b = NULL;
    CHECK_OK(sd_model_load(&m, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    if (!m) return;
    CHECK_OK(lora_targets_from_model(&a, m));
    CHECK_OK(lora_targets_from_config(&b, unet_cfg(m->unet), clip_text_cfg(m->text)));
    if (a && b) {
        CHECK(lora_targets_count(a) == lora_targets_count(b), "model %d targets, config %d",
              lora_targets_count(a), lora_targets_count(b));
        int bad = 0;
        for (int i = 0; i < lora_targets_count(a); i++) {
            const lora_target *x = lora_targets_at(a, i);
            int j = lora_targets_find(b, x->comp, x->path);
            const lora_target *y = j >= 0 ? lora_targets_at(b, j) : NULL;
            if (!y || y->kind != x->kind || y->n_out != x->n_out || y->n_in != x->n_in || y->k != x->k ||
                y->stride != x->stride || y->pad != x->pad) {
                if (bad++ < 5) fprintf(stderr, "enumeration differs at %s\n", x->path);
            }
        }
        CHECK(bad == 0, "%d targets differ between the model and the config enumeration", bad);
        printf("tiny model: %d LoRA targets, config enumeration identical\n", lora_targets_count(a));
    }
    lora_targets_free(a);
    lora_targets_free(b);
    sd_model_free(m);
}

typedef struct key_case {
    const char *key;
    int comp;              /* -1: must not resolve */
    const char *path;
    lora_role role;
    unsigned spelling;     /* flags that must be set */
} key_case;

static const key_case CASES[] = {
    /* kohya, diffusers dialect */
    {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", LORA_UNET,
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    {"lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0.lora_up.weight", LORA_UNET,
     "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0", LORA_ROLE_UP, LORA_FMT_KOHYA},
    {"lora_unet_mid_block_attentions_0_proj_in.alpha", LORA_UNET, "mid_block.attentions.0.proj_in",
     LORA_ROLE_ALPHA, LORA_FMT_KOHYA},
    {"lora_unet_down_blocks_1_resnets_0_conv_shortcut.lora_down.weight", LORA_UNET,
     "down_blocks.1.resnets.0.conv_shortcut", LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    {"lora_unet_down_blocks_2_resnets_1_time_emb_proj.lora_down.weight", LORA_UNET,
     "down_blocks.2.resnets.1.time_emb_proj", LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    {"lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj.lora_down.weight", LORA_UNET,
     "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj", LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    {"lora_unet_conv_in.lora_down.weight", LORA_UNET, "conv_in", LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    {"lora_unet_time_embedding_linear_2.lora_up.weight", LORA_UNET, "time_embedding.linear_2", LORA_ROLE_UP,
     LORA_FMT_KOHYA},
    {"lora_unet_down_blocks_2_downsamplers_0_conv.lora_down.weight", LORA_UNET,
     "down_blocks.2.downsamplers.0.conv", LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    /* kohya, LDM dialect */
    {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight", LORA_UNET,
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_input_blocks_3_0_op.lora_down.weight", LORA_UNET, "down_blocks.0.downsamplers.0.conv",
     LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_input_blocks_4_0_skip_connection.lora_down.weight", LORA_UNET,
     "down_blocks.1.resnets.0.conv_shortcut", LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_middle_block_0_in_layers_2.lora_down.weight", LORA_UNET, "mid_block.resnets.0.conv1",
     LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_middle_block_2_emb_layers_1.alpha", LORA_UNET, "mid_block.resnets.1.time_emb_proj",
     LORA_ROLE_ALPHA, LORA_FMT_KOHYA_LDM},
    {"lora_unet_middle_block_1_proj_out.lora_up.weight", LORA_UNET, "mid_block.attentions.0.proj_out",
     LORA_ROLE_UP, LORA_FMT_KOHYA_LDM},
    {"lora_unet_output_blocks_2_1_conv.lora_down.weight", LORA_UNET, "up_blocks.0.upsamplers.0.conv",
     LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_output_blocks_5_2_conv.lora_down.weight", LORA_UNET, "up_blocks.1.upsamplers.0.conv",
     LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_output_blocks_11_1_transformer_blocks_0_attn2_to_k.lora_down.weight", LORA_UNET,
     "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k", LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_output_blocks_8_0_out_layers_3.lora_down.weight", LORA_UNET, "up_blocks.2.resnets.2.conv2",
     LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    {"lora_unet_time_embed_0.lora_down.weight", LORA_UNET, "time_embedding.linear_1", LORA_ROLE_DOWN,
     LORA_FMT_KOHYA_LDM},
    {"lora_unet_out_2.lora_down.weight", LORA_UNET, "conv_out", LORA_ROLE_DOWN, LORA_FMT_KOHYA_LDM},
    /* kohya text encoder */
    {"lora_te_text_model_encoder_layers_11_self_attn_out_proj.lora_up.weight", LORA_TE,
     "text_model.encoder.layers.11.self_attn.out_proj", LORA_ROLE_UP, LORA_FMT_KOHYA},
    {"lora_te_text_model_encoder_layers_1_mlp_fc2.alpha", LORA_TE, "text_model.encoder.layers.1.mlp.fc2",
     LORA_ROLE_ALPHA, LORA_FMT_KOHYA},
    {"lora_te_encoder_layers_3_mlp_fc1.lora_down.weight", LORA_TE, "text_model.encoder.layers.3.mlp.fc1",
     LORA_ROLE_DOWN, LORA_FMT_KOHYA},
    /* PEFT / diffusers */
    {"unet.down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v.lora_A.weight", LORA_UNET,
     "down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v", LORA_ROLE_DOWN, LORA_FMT_PEFT},
    {"unet.up_blocks.2.resnets.1.conv1.lora_B.weight", LORA_UNET, "up_blocks.2.resnets.1.conv1", LORA_ROLE_UP,
     LORA_FMT_PEFT},
    {"text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_B.weight", LORA_TE,
     "text_model.encoder.layers.0.self_attn.k_proj", LORA_ROLE_UP, LORA_FMT_PEFT},
    {"text_encoder.encoder.layers.5.mlp.fc1.lora_A.weight", LORA_TE, "text_model.encoder.layers.5.mlp.fc1",
     LORA_ROLE_DOWN, LORA_FMT_PEFT},
    {"base_model.model.mid_block.attentions.0.transformer_blocks.0.ff.net.2.lora_A.weight", LORA_UNET,
     "mid_block.attentions.0.transformer_blocks.0.ff.net.2", LORA_ROLE_DOWN, LORA_FMT_PEFT_PREFIX},
    {"base_model.model.text_model.encoder.layers.2.self_attn.q_proj.lora_B.weight", LORA_TE,
     "text_model.encoder.layers.2.self_attn.q_proj", LORA_ROLE_UP, LORA_FMT_PEFT_PREFIX},
    {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight", LORA_UNET,
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", LORA_ROLE_DOWN, LORA_FMT_DIFFUSERS_OLD},
    {"unet.up_blocks.1.attentions.2.transformer_blocks.0.attn2.processor.to_out_lora.up.weight", LORA_UNET,
     "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_out.0", LORA_ROLE_UP, LORA_FMT_DIFFUSERS_OLD},
    {"down_blocks.0.attentions.1.transformer_blocks.0.attn1.processor.to_k_lora.up.weight", LORA_UNET,
     "down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_k", LORA_ROLE_UP, LORA_FMT_DIFFUSERS_OLD},
    {"unet.down_blocks.0.attentions.0.proj_in.lora.down.weight", LORA_UNET, "down_blocks.0.attentions.0.proj_in",
     LORA_ROLE_DOWN, LORA_FMT_DIFFUSERS_OLD},
    {"text_encoder.text_model.encoder.layers.4.self_attn.to_out_lora.down.weight", LORA_TE,
     "text_model.encoder.layers.4.self_attn.out_proj", LORA_ROLE_DOWN, LORA_FMT_DIFFUSERS_OLD},
    {"text_encoder.text_model.encoder.layers.4.self_attn.q_proj.lora_linear_layer.up.weight", LORA_TE,
     "text_model.encoder.layers.4.self_attn.q_proj", LORA_ROLE_UP, LORA_FMT_DIFFUSERS_OLD},
    /* must not resolve */
    {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_1_attn1_to_q.lora_down.weight", -1, NULL, 0, 0},
    {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_qq.lora_down.weight", -1, NULL, 0, 0},
    {"lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k.lora_down.weight", -1, NULL, 0, 0},
    {"lora_te_text_model_encoder_layers_12_mlp_fc1.lora_down.weight", -1, NULL, 0, 0},
    {"unet.down_blocks.0.attentions.0.proj_in.lora_C.weight", -1, NULL, 0, 0},
    {"unet.down.blocks.0.attentions.0.proj.in.lora_A.weight", -1, NULL, 0, 0},
    {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight", -1, NULL, 0, 0},
    {"lora_unet_down_blocks_0_attentions_0_proj_in", -1, NULL, 0, 0},
};

static void check_keys(void) {
    lora_targets *t = NULL;
    CHECK_OK(lora_targets_sd15(&t));
    if (!t) return;
    int n_unet = 0, n_te = 0;
    for (int i = 0; i < lora_targets_count(t); i++) {
        n_unet += lora_targets_at(t, i)->comp == LORA_UNET;
        n_te += lora_targets_at(t, i)->comp == LORA_TE;
    }
    /* SD1.5: 16 Transformer2D x 12 (q,k,v,out x2, ff x2, proj_in/out), 22 resnets x 3, 14
     * shortcuts, 3 down- and 3 upsamplers, conv_in/out, 2 time linears = 282 (torch agrees) */
    printf("SD1.5 targets: %d UNet, %d text encoder\n", n_unet, n_te);
    CHECK(n_te == 72, "SD1.5 text encoder: %d targets, expected 72", n_te);
    CHECK(n_unet == 282, "SD1.5 UNet: %d targets, expected 282", n_unet);
    for (size_t i = 0; i < LMX_ARRAY_LEN(CASES); i++) {
        const key_case *c = &CASES[i];
        lora_key k;
        lora_key_parse(t, c->key, &k);
        if (c->comp < 0) {
            CHECK(k.role == LORA_ROLE_NONE || k.target < 0, "%s resolved to %s", c->key,
                  lora_targets_at(t, k.target)->path);
            continue;
        }
        CHECK(k.target >= 0, "%s: unresolved", c->key);
        if (k.target < 0) continue;
        const lora_target *g = lora_targets_at(t, k.target);
        CHECK((int)k.comp == c->comp && !strcmp(g->path, c->path), "%s -> %s %s, expected %s", c->key,
              lora_comp_name(k.comp), g->path, c->path);
        CHECK(k.role == c->role, "%s: role %d, expected %d", c->key, k.role, c->role);
        CHECK((k.spelling & c->spelling) == c->spelling, "%s: spelling %#x lacks %#x", c->key, k.spelling,
              c->spelling);
        if (c->spelling == LORA_FMT_KOHYA)
            CHECK(!(k.spelling & LORA_FMT_KOHYA_LDM), "%s flagged as LDM dialect", c->key);
    }
    /* geometry of a few SD1.5 targets */
    const lora_target *g = lora_targets_at(t, lora_targets_find(t, LORA_UNET, "down_blocks.1.downsamplers.0.conv"));
    CHECK(g->k == 3 && g->stride == 2 && g->pad == 1 && g->n_in == 640, "downsampler geometry");
    g = lora_targets_at(t, lora_targets_find(t, LORA_UNET, "up_blocks.3.attentions.0.transformer_blocks.0.attn2.to_k"));
    CHECK(g->n_in == 768 && g->n_out == 320 && g->kind == NN_LINEAR, "attn2.to_k shape");
    g = lora_targets_at(t, lora_targets_find(t, LORA_UNET, "mid_block.attentions.0.proj_in"));
    CHECK(g->kind == NN_CONV2D && g->k == 1 && g->n_in == 1280, "proj_in is a 1x1 conv");
    lora_targets_free(t);
}

static void check_refused(void) {
    static const char *lyco[] = {"lora_unet_x.hada_w1_a", "lora_unet_x.lokr_w1", "lora_unet_x.lora_mid.weight",
                                 "lora_unet_x.dora_scale", "lora_te_x.oft_blocks", "lora_unet_x.diff",
                                 "unet.x.lora_magnitude_vector"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(lyco); i++)
        CHECK(lora_key_unsupported(lyco[i]) != NULL, "%s not recognised as unsupported", lyco[i]);
    CHECK(!lora_key_unsupported("lora_unet_x.lora_down.weight"), "plain LoRA refused");
    CHECK(!lora_key_unsupported("unet.x.diff"), "'.diff' outside kohya stems refused");
    CHECK(lora_key_sdxl("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"), "te2");
    CHECK(lora_key_sdxl("lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha"), "te1");
    CHECK(lora_key_sdxl("text_encoder_2.text_model.x.lora_A.weight"), "text_encoder_2");
    CHECK(!lora_key_sdxl("lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"), "te flagged as SDXL");
}

/* Write a PEFT file: UNet and TE modules with the given ranks, no alpha. */
typedef struct mod_def {
    const char *key; /* without .lora_A.weight */
    int64_t out, in;
    int r;
} mod_def;

static void write_peft(const char *path, const mod_def *d, int n) {
    st_writer *w = NULL;
    CHECK_OK(st_writer_create(&w));
    if (!w) return;
    float buf[64 * 64];
    for (int i = 0; i < n; i++) {
        char k[256];
        int64_t sa[2] = {d[i].r, d[i].in}, sb[2] = {d[i].out, d[i].r};
        lmx_fill_randn(buf, sa[0] * sa[1], 100 + (uint64_t)i, 0.1f);
        snprintf(k, sizeof k, "%s.lora_A.weight", d[i].key);
        CHECK_OK(st_writer_add(w, k, ST_F32, 2, sa, buf));
        lmx_fill_randn(buf, sb[0] * sb[1], 200 + (uint64_t)i, 0.1f);
        snprintf(k, sizeof k, "%s.lora_B.weight", d[i].key);
        CHECK_OK(st_writer_add(w, k, ST_F32, 2, sb, buf));
    }
    CHECK_OK(st_writer_finish(w, path));
    st_writer_free(w);
}

static float scale_of(const lmx_lora *l, const char *path, int ref) {
    for (int i = 0; i < l->n_mod; i++)
        if (!strcmp(l->mod[i].tg->path, path)) return ref ? l->mod[i].scale_ref : l->mod[i].scale_own;
    return -1;
}

static void check_ref_scaling(void) {
    /* the values diffusers 0.32.2 printed for this very file (lora.md) */
    static const mod_def D[] = {
        {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k", 32, 32, 2},
        {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 32, 32, 4},
        {"unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 32, 32, 4},
        {"text_encoder.text_model.encoder.layers.0.self_attn.out_proj", 16, 16, 3},
        {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj", 16, 16, 2},
        {"text_encoder.text_model.encoder.layers.1.self_attn.q_proj", 16, 16, 2},
        {"text_encoder.text_model.encoder.layers.0.mlp.fc1", 64, 16, 2},
    };
    const char *path = tmp_path("peft_nonuniform.safetensors");
    write_peft(path, D, (int)LMX_ARRAY_LEN(D));
    sd_model *m = NULL;
    lora_targets *t = NULL;
    lmx_lora *l = NULL;
    CHECK_OK(sd_model_load(&m, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    if (m) CHECK_OK(lora_targets_from_model(&t, m));
    lora_opts o = lora_opts_default();
    o.quiet = 1;
    if (t) CHECK_OK(lora_load_targets(&l, t, path, &o));
    if (l) {
        static const struct {
            const char *path;
            float own, ref;
        } E[] = {
            {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k", 1.0f, 1.0f},
            {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 1.0f, 0.5f},
            {"up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 1.0f, 0.5f},
            {"text_model.encoder.layers.0.self_attn.out_proj", 1.0f, 1.0f},
            {"text_model.encoder.layers.0.self_attn.q_proj", 1.0f, 1.5f},
            {"text_model.encoder.layers.1.self_attn.q_proj", 1.0f, 1.5f},
            {"text_model.encoder.layers.0.mlp.fc1", 1.0f, 1.5f},
        };
        for (size_t i = 0; i < LMX_ARRAY_LEN(E); i++) {
            CHECK(scale_of(l, E[i].path, 0) == E[i].own, "%s: own scale %g", E[i].path,
                  (double)scale_of(l, E[i].path, 0));
            CHECK(scale_of(l, E[i].path, 1) == E[i].ref, "%s: diffusers scale %g, expected %g", E[i].path,
                  (double)scale_of(l, E[i].path, 1), (double)E[i].ref);
        }
        CHECK(l->info[LORA_UNET].n_ref_differs == 2 && l->info[LORA_TE].n_ref_differs == 3,
              "differs: %d / %d", l->info[LORA_UNET].n_ref_differs, l->info[LORA_TE].n_ref_differs);
        CHECK(strstr(l->report, "first module's rank") != NULL, "report lacks the rule: %s", l->report);
        CHECK(l->formats == LORA_FMT_PEFT, "formats %#x", l->formats);
    }
    lora_free(l);
    lora_targets_free(t);
    sd_model_free(m);
    unlink(path);
}

int main(void) {
    check_enumeration();
    check_keys();
    check_refused();
    check_ref_scaling();
    return lmx_test_finish();
}
