/*
 * lora_keys.c - from a LoRA file key to (component, layer, role), by tables.
 *
 * A key is a module stem plus a suffix naming the tensor's role:
 *
 *   kohya      lora_unet_<flat path>.lora_down.weight | .lora_up.weight | .alpha
 *              lora_te_<flat path>...        (flat: '.' -> '_', either UNet dialect)
 *   PEFT       unet.<path>.lora_A.weight | .lora_B.weight
 *              text_encoder.<path>...        base_model.model.<path>... (PEFT wrapper)
 *   older      <prefix><path>.lora.down.weight | .lora.up.weight
 *   diffusers  <prefix><path>.lora_linear_layer.down.weight | ...up.weight
 *              <prefix><attn>.processor.to_q_lora.down.weight (to_k, to_v, to_out)
 *              text_encoder.<...>.self_attn.to_q_lora.down.weight (TE: q_proj ...)
 *
 * The suffix table gives the role; the stem is looked up in the target index
 * (lora_targets.c) under the component its prefix names; when the stem is not
 * a module path, the alias table rewrites its tail (".processor.to_out" ->
 * ".to_out.0", TE ".to_q" -> ".q_proj", ...) and looks again. Keys with a
 * suffix outside the table are not plain-LoRA tensors: they are reported as
 * unmatched, unless they belong to an algorithm loramix refuses (LyCORIS,
 * DoRA, ...), which the loader turns into an error.
 *
 * Mirrors the conventions of kohya-ss sd-scripts networks/lora.py and
 * diffusers 0.32.2 loaders/lora_conversion_utils.py, utils/state_dict_utils.py
 * (the reference converts by string replacement; loramix resolves names
 * against the model's own module list instead, docs/methods.md §2.4).
 */
#include <string.h>

#include "lora/lora_impl.h"

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends_n(const char *s, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/* ---- suffixes ------------------------------------------------------------ */

typedef struct suffix_rule {
    const char *suffix;
    lora_role role;
    unsigned spelling;
    const char *append;   /* appended to the stem to form the module path */
} suffix_rule;

static const suffix_rule SUFFIXES[] = {
    {".lora_down.weight", LORA_ROLE_DOWN, LORA_FMT_KOHYA, ""},
    {".lora_up.weight", LORA_ROLE_UP, LORA_FMT_KOHYA, ""},
    {".alpha", LORA_ROLE_ALPHA, LORA_FMT_KOHYA, ""},
    {".lora_A.weight", LORA_ROLE_DOWN, LORA_FMT_PEFT, ""},
    {".lora_B.weight", LORA_ROLE_UP, LORA_FMT_PEFT, ""},
    {".lora_A.default.weight", LORA_ROLE_DOWN, LORA_FMT_PEFT, ""},
    {".lora_B.default.weight", LORA_ROLE_UP, LORA_FMT_PEFT, ""},
    {".lora.down.weight", LORA_ROLE_DOWN, LORA_FMT_DIFFUSERS_OLD, ""},
    {".lora.up.weight", LORA_ROLE_UP, LORA_FMT_DIFFUSERS_OLD, ""},
    {".lora_linear_layer.down.weight", LORA_ROLE_DOWN, LORA_FMT_DIFFUSERS_OLD, ""},
    {".lora_linear_layer.up.weight", LORA_ROLE_UP, LORA_FMT_DIFFUSERS_OLD, ""},
    /* attention processors: "<attn>.processor.to_q_lora.down.weight" */
    {"_lora.down.weight", LORA_ROLE_DOWN, LORA_FMT_DIFFUSERS_OLD, ""},
    {"_lora.up.weight", LORA_ROLE_UP, LORA_FMT_DIFFUSERS_OLD, ""},
};

/* Tail rewrites for stems that are not module paths as they stand. */
typedef struct alias_rule {
    lora_comp comp;
    const char *from, *to;
} alias_rule;

static const alias_rule ALIASES[] = {
    {LORA_UNET, ".processor.to_q", ".to_q"},
    {LORA_UNET, ".processor.to_k", ".to_k"},
    {LORA_UNET, ".processor.to_v", ".to_v"},
    {LORA_UNET, ".processor.to_out", ".to_out.0"},
    {LORA_UNET, ".processor.to_out.0", ".to_out.0"},
    {LORA_UNET, ".to_out", ".to_out.0"},
    {LORA_TE, ".to_q", ".q_proj"},
    {LORA_TE, ".to_k", ".k_proj"},
    {LORA_TE, ".to_v", ".v_proj"},
    {LORA_TE, ".to_out", ".out_proj"},
};

/* Component prefixes of diffusers/PEFT keys (kohya prefixes handled apart). */
typedef struct prefix_rule {
    const char *prefix;
    int comp;             /* LORA_UNET, LORA_TE, or -1: decide by lookup   */
    unsigned spelling;
} prefix_rule;

static const prefix_rule PREFIXES[] = {
    {"unet.", LORA_UNET, 0},
    {"text_encoder.", LORA_TE, 0},
    {"base_model.model.unet.", LORA_UNET, LORA_FMT_PEFT_PREFIX},
    {"base_model.model.text_encoder.", LORA_TE, LORA_FMT_PEFT_PREFIX},
    {"base_model.model.", -1, LORA_FMT_PEFT_PREFIX},
    {"", -1, 0}, /* bare module paths (attn-procs files, PEFT model dumps) */
};

static const suffix_rule *match_suffix(const char *key, size_t n) {
    const suffix_rule *best = NULL;
    for (size_t i = 0; i < LMX_ARRAY_LEN(SUFFIXES); i++)
        if (ends_n(key, n, SUFFIXES[i].suffix) &&
            (!best || strlen(SUFFIXES[i].suffix) > strlen(best->suffix)))
            best = &SUFFIXES[i];
    return best;
}

/* Look a dotted module path up in component c, trying the alias table. */
static int resolve_dotted(const lora_targets *t, lora_comp c, const char *path) {
    const lora_name *e = lora_targets_lookup(t, c, path);
    if (e && (e->dialect & LORA_NAME_DOTTED)) return e->target;
    size_t n = strlen(path);
    char buf[600];
    for (size_t i = 0; i < LMX_ARRAY_LEN(ALIASES); i++) {
        const alias_rule *a = &ALIASES[i];
        if (a->comp != c || !ends_n(path, n, a->from)) continue;
        size_t keep = n - strlen(a->from);
        if (keep + strlen(a->to) + 1 > sizeof buf) continue;
        memcpy(buf, path, keep);
        strcpy(buf + keep, a->to);
        e = lora_targets_lookup(t, c, buf);
        if (e && (e->dialect & LORA_NAME_DOTTED)) return e->target;
    }
    return -1;
}

void lora_key_parse(const lora_targets *t, const char *key, lora_key *out) {
    memset(out, 0, sizeof *out);
    out->target = -1;
    size_t n = strlen(key);
    char stem[600];

    /* kohya: the stem runs to the first '.' */
    int kohya_unet = starts(key, "lora_unet_"), kohya_te = starts(key, "lora_te_");
    if (kohya_unet || kohya_te) {
        const char *dot = strchr(key, '.');
        size_t sl = dot ? (size_t)(dot - key) : n;
        out->stem_len = sl;
        out->comp = kohya_unet ? LORA_UNET : LORA_TE;
        out->spelling = LORA_FMT_KOHYA;
        const suffix_rule *r = dot ? match_suffix(key, n) : NULL;
        if (!r || strlen(r->suffix) != n - sl) return; /* not a plain-LoRA tensor */
        out->role = r->role;
        size_t pl = kohya_unet ? strlen("lora_unet_") : strlen("lora_te_");
        if (sl - pl + 1 > sizeof stem) return;
        memcpy(stem, key + pl, sl - pl);
        stem[sl - pl] = 0;
        const lora_name *e = lora_targets_lookup(t, out->comp, stem);
        if (e && (e->dialect & (LORA_NAME_FLAT | LORA_NAME_FLAT_LDM))) {
            out->target = e->target;
            if (!(e->dialect & LORA_NAME_FLAT)) out->spelling |= LORA_FMT_KOHYA_LDM;
        }
        return;
    }

    /* diffusers / PEFT */
    const suffix_rule *r = match_suffix(key, n);
    if (!r) {
        out->stem_len = n;
        return;
    }
    size_t sl = n - strlen(r->suffix);
    out->stem_len = sl;
    out->role = r->role;
    out->spelling = r->spelling == LORA_FMT_KOHYA ? LORA_FMT_PEFT : r->spelling;
    for (size_t i = 0; i < LMX_ARRAY_LEN(PREFIXES); i++) {
        const prefix_rule *p = &PREFIXES[i];
        size_t pl = strlen(p->prefix);
        if (strncmp(key, p->prefix, pl) != 0 || pl >= sl) continue;
        size_t len = sl - pl;
        if (len + 16 > sizeof stem) return;
        memcpy(stem, key + pl, len);
        stem[len] = 0;
        /* "<attn>.processor.to_q_lora.down.weight": the suffix ate "_lora" */
        out->spelling |= p->spelling;
        for (int c = 0; c < LORA_N_COMP; c++) {
            if (p->comp >= 0 && p->comp != c) continue;
            int tg = resolve_dotted(t, (lora_comp)c, stem);
            if (tg >= 0) {
                out->comp = (lora_comp)c;
                out->target = tg;
                return;
            }
        }
        if (p->comp >= 0) out->comp = (lora_comp)p->comp;
        return; /* the first prefix that fits decides; unmatched */
    }
}

/* ---- refused kinds --------------------------------------------------------- */

typedef struct lyco_rule {
    const char *suffix;
    const char *what;
} lyco_rule;

static const lyco_rule LYCO[] = {
    {".hada_w1_a", "LyCORIS LoHa (hada_*)"},   {".hada_w1_b", "LyCORIS LoHa (hada_*)"},
    {".hada_w2_a", "LyCORIS LoHa (hada_*)"},   {".hada_w2_b", "LyCORIS LoHa (hada_*)"},
    {".hada_t1", "LyCORIS LoHa (hada_*)"},     {".hada_t2", "LyCORIS LoHa (hada_*)"},
    {".lokr_w1", "LyCORIS LoKr (lokr_*)"},     {".lokr_w1_a", "LyCORIS LoKr (lokr_*)"},
    {".lokr_w1_b", "LyCORIS LoKr (lokr_*)"},   {".lokr_w2", "LyCORIS LoKr (lokr_*)"},
    {".lokr_w2_a", "LyCORIS LoKr (lokr_*)"},   {".lokr_w2_b", "LyCORIS LoKr (lokr_*)"},
    {".lokr_t2", "LyCORIS LoKr (lokr_*)"},
    {".lora_mid.weight", "LyCORIS LoCon with a Tucker/CP core (lora_mid)"},
    {".dora_scale", "DoRA (dora_scale)"},
    {".lora_magnitude_vector", "DoRA (lora_magnitude_vector)"},
    {".lora_magnitude_vector.weight", "DoRA (lora_magnitude_vector)"},
    {".oft_blocks", "LyCORIS OFT (oft_blocks)"}, {".oft_diag", "LyCORIS OFT (oft_diag)"},
    {".diff", "LyCORIS full weight difference (diff)"},
    {".diff_b", "LyCORIS full weight difference (diff_b)"},
    {".w_norm", "LyCORIS norm tuning (w_norm)"}, {".b_norm", "LyCORIS norm tuning (b_norm)"},
    {".on_input", "LyCORIS (IA)^3 (on_input)"},
    {".a1.weight", "LyCORIS GLoRA (a1/a2/b1/b2)"}, {".b1.weight", "LyCORIS GLoRA (a1/a2/b1/b2)"},
    {".lora_B.bias", "a LoRA with biases (lora_B.bias)"},
    {".lora_up.bias", "a LoRA with biases (lora_up.bias)"},
};

const char *lora_key_unsupported(const char *key) {
    size_t n = strlen(key);
    int kohya = starts(key, "lora_unet_") || starts(key, "lora_te");
    for (size_t i = 0; i < LMX_ARRAY_LEN(LYCO); i++) {
        const char *s = LYCO[i].suffix;
        /* generic names (".diff", ".on_input", ".a1.weight") only count in
         * adapter files with a kohya stem, not in any model's tensors */
        int generic = !strcmp(s, ".diff") || !strcmp(s, ".diff_b") || !strcmp(s, ".w_norm") ||
                      !strcmp(s, ".b_norm") || !strcmp(s, ".on_input") || !strcmp(s, ".a1.weight") ||
                      !strcmp(s, ".b1.weight");
        if (generic && !kohya) continue;
        if (ends_n(key, n, s)) return LYCO[i].what;
    }
    return NULL;
}

int lora_key_sdxl(const char *key) {
    return starts(key, "lora_te1_") || starts(key, "lora_te2_") || starts(key, "text_encoder_2.") ||
           strstr(key, "add_embedding") != NULL || strstr(key, "label_emb") != NULL;
}
