/*
 * nn.h - the layer wrappers the three SD networks are built from.
 *
 * Every Linear and Conv2d of the CLIP text encoder, the UNet and the VAE is
 * an nn_layer: its diffusers/transformers module path (so that LoRA keys can
 * be matched against the model's own module list), the prepared base kernel
 * (op_linear or op_conv2d, fp32 weights converted at load), its shape, and a
 * index in its network (id). The layers are immutable once loaded: LoRA
 * state lives outside the model, in an nn_hooks table (one entry per layer
 * id: a list of attached adapters and an optional private merged kernel
 * that replaces the base one) that the caller owns and hands to a forward
 * through nn_run.hooks.
 *
 * A forward call receives an nn_run: the kernel context, the number of
 * samples in the batch, the LoRA hooks and per-sample scale table, and the
 * activation arena. One batched forward can so apply a different LoRA to each sample
 * (LoRA Composite runs 2N samples, sample b using branch b/2):
 *
 *     y = W x + b                                     (whole batch, one GEMM)
 *     for each attached adapter a, in list order:
 *         for each sample s with c = lora_scale[a.lora_index][s] != 0:
 *             y_s += (c · a.alpha_over_rank) · up(down(x_s))
 *
 * i.e. the scale multiplies up's output and is then added, as peft computes
 * `result + lora_B(lora_A(x)) * scaling`.
 *
 * Loading goes through an nn_src: one safetensors file (memory-mapped), an
 * optional prefix and name map (LDM single files), per-file "used" marks for
 * the unexpected-tensor report, and shape checks whose errors name the key
 * and both shapes. Weights are converted to fp32 into the prepared kernels;
 * each layer remembers its source tensor so a LoRA merge can re-read W.
 * An nn_src can instead generate weights (hashinit.h) for parity tests.
 *
 * Reference: torch.nn.Linear / Conv2d / GroupNorm / LayerNorm semantics;
 * peft tuners/lora/layer.py for the side path.
 */
#ifndef LMX_MODEL_NN_H
#define LMX_MODEL_NN_H

#include "core/core.h"
#include "io/safetensors.h"
#include "ops/ops.h"

struct keymap;

/* ---- layers ------------------------------------------------------------ */

typedef enum nn_kind { NN_LINEAR = 0, NN_CONV2D = 1 } nn_kind;

/* One LoRA adapter attached to a layer through a hook table (nn_hooks). The
 * ops are owned by whoever attached the adapter (the LoRA module); the hook
 * only holds the list.
 * Linear layers (and 1x1 convs) use down/up (op_linear, A [r, in], B [out, r]);
 * k x k convs use down_conv (A [r, in, kh, kw] with the base layer's stride
 * and padding) and up_conv (B [out, r, 1, 1]). A 1x1 conv accepts either. */
typedef struct nn_adapter {
    int lora_index;            /* row of nn_run.lora_scale                     */
    int rank;
    op_linear *down, *up;
    op_conv2d *down_conv, *up_conv;
    float alpha_over_rank;     /* multiplied into the per-sample scale         */
    void *user;                /* for the attacher; never touched here         */
} nn_adapter;

typedef struct nn_layer {
    char *path;                /* "down_blocks.0.attentions.0.proj_in"          */
    nn_kind kind;
    int64_t n_out, n_in;       /* linear [n_out, n_in]; conv c_out, c_in        */
    int kh, kw, stride, pad;   /* conv geometry (1, 1, 1, 0 for a linear)       */
    int has_bias;
    /* Base kernel: 1x1 stride-1 convs run as linears over NHWC positions. */
    op_linear *lin;
    op_conv2d *conv;
    /* Where W and b came from (NULL when generated); valid while the model
     * lives. A linear stored as [O, I, 1, 1] (LDM VAE attention) has the same
     * bytes as [O, I]. */
    const st_tensor *w_src, *b_src;
    int id;                    /* index in its network's nn_layers            */
} nn_layer;

/* The Linear/Conv2d layers of one network in module order. */
typedef struct nn_layers {
    nn_layer **v;
    int n, cap;
} nn_layers;

void nn_layers_free(nn_layers *ls);            /* frees the layers too */
nn_layer *nn_layers_find(const nn_layers *ls, const char *path); /* NULL if absent */

/* ---- LoRA hooks: per-run state of one network's layers ------------------ */

typedef struct nn_hook {
    nn_adapter *adapters;
    int n_adapters, cap_adapters;
    /* Optional private kernel replacing the base one (LoRA merge), owned by
     * the hook: set with nn_hooks_set_merged. */
    op_linear *merged_lin;
    op_conv2d *merged_conv;
} nn_hook;

typedef struct nn_hooks {
    nn_hook *v;                /* [n], index = nn_layer.id                      */
    int n;
} nn_hooks;

/* One empty hook per layer of ls. */
lmx_status nn_hooks_init(nn_hooks *h, const nn_layers *ls);
void nn_hooks_free(nn_hooks *h);  /* frees the merged kernels too */
/* Largest rank over the hooks' adapters (0 when none; h may be NULL). */
int nn_hooks_max_rank(const nn_hooks *h);
/* Append an adapter (copied) to layer l's hook. LMX_ERR_NOMEM or
 * LMX_ERR_ARG (shape or kind mismatch, named by the layer path). */
lmx_status nn_hooks_attach(nn_hooks *h, const nn_layer *l, const nn_adapter *a);
void nn_hooks_detach_all(nn_hooks *h);
/* Take ownership of a merged kernel for l (NULL restores the base). The
 * kernel's shape must match. Exactly one of lin/conv matches the layer's
 * base kind. */
lmx_status nn_hooks_set_merged(nn_hooks *h, const nn_layer *l, op_linear *lin, op_conv2d *conv);
/* Layers with a merged kernel (h may be NULL). */
int nn_hooks_n_merged(const nn_hooks *h);
/* The base weight as fp32 in PyTorch layout ([n_out, n_in] or
 * [c_out, c_in, kh, kw]); dst has n_out·n_in·kh·kw floats. LMX_ERR_UNSUPPORTED
 * when the layer was generated and has no source tensor. */
lmx_status nn_layer_weight_f32(const nn_layer *l, float *dst);
lmx_status nn_layer_bias_f32(const nn_layer *l, float *dst); /* n_out floats; zeros if no bias */

/* ---- per-forward state ------------------------------------------------- */

typedef struct nn_run {
    op_ctx *ctx;
    int n_samples;             /* B of the current forward (set by the network) */
    const nn_hooks *hooks;     /* LoRA state of the network's layers; NULL = none */
    int n_loras;               /* rows of lora_scale                            */
    const float *lora_scale;   /* [n_loras][n_samples]; NULL = no LoRA          */
    lmx_arena *arena;          /* activations; size it with *_arena_bytes        */
    float *scratch;            /* LoRA side-path scratch (set by the network)   */
    int64_t scratch_n;
} nn_run;

/* Rows processed at once by the LoRA side path. */
#define NN_LORA_CHUNK 1024
/* Scratch floats the side path needs for layers with rank <= r, outputs
 * <= n_out and conv outputs of at most hw positions per sample. */
int64_t nn_lora_scratch_floats(int r, int64_t n_out, int64_t hw);

/* Bytes an arena allocation of n floats takes (64-byte granules). */
static inline size_t nn_bytes(int64_t n_floats) {
    return (((size_t)n_floats * sizeof(float)) + 63) & ~(size_t)63;
}
/* n floats from the run's arena, NULL (error set) when full. */
float *nn_alloc(nn_run *run, int64_t n_floats);
/* The fixed slack every arena planner adds on top of the granules it counts:
 * a forward's measured peak is exactly its plan minus this
 * (tests/unit/test_arena_plan.c holds each planner to that). */
#define NN_ARENA_SLACK 256

/* Linear on rows: y[M, n_out] (=|+=) x[M, n_in]·W^T + b. The M rows are rows
 * row0 .. row0+M-1 of a batch laid out sample-major with rows_per_sample
 * rows per sample (that is how the side path finds each row's sample).
 * beta = 1 adds into y (residual). Works for 1x1 conv layers too. */
lmx_status nn_linear_rows(nn_run *run, const nn_layer *l, const float *x, float *y, int64_t M,
                          int64_t rows_per_sample, int64_t row0, float beta);
/* The common case: M rows spread evenly over run->n_samples samples. */
lmx_status nn_linear(nn_run *run, const nn_layer *l, const float *x, float *y, int64_t M,
                     float beta);
/* NHWC conv over the run's batch: x[B, H, W, c_in] -> y[B, Ho, Wo, c_out]. */
lmx_status nn_conv(nn_run *run, const nn_layer *l, const float *x, float *y, int64_t H, int64_t W,
                   float beta);

/* ---- norms -------------------------------------------------------------- */

typedef struct nn_norm {
    float *gamma, *beta;       /* [C], owned                                    */
    int64_t C;
    int groups;                /* GroupNorm groups (0 for LayerNorm)            */
    float eps;
} nn_norm;
void nn_norm_free(nn_norm *n);

/* ---- loading ------------------------------------------------------------ */

/* Generator for weights not read from a file (hashinit.h): fill dst[numel]
 * for the tensor `name` of the given shape. */
typedef lmx_status (*nn_gen_fn)(void *user, const char *name, int ndim, const int64_t *shape,
                                float *dst);

typedef struct nn_src {
    st_file *f;                /* the weights (not owned); NULL with gen        */
    const char *label;         /* "unet", "text_encoder", "vae" (messages)      */
    const char *prefix;        /* file-key prefix, "" for diffusers files        */
    const struct keymap *km;   /* diffusers -> file name map; NULL = identity   */
    uint8_t *used;             /* [st_count(f)] marks, may be shared, may be NULL */
    op_prec prec;
    unsigned conv_flags;       /* op_conv2d_create flags (OP_CONV_WINOGRAD)     */
    nn_gen_fn gen;             /* if set, weights come from gen, not f          */
    void *gen_user;
    float *buf;                /* conversion scratch (owned)                    */
    size_t buf_n;
} nn_src;

void nn_src_release(nn_src *s);  /* frees the scratch only */

/* Find the tensor for diffusers name `name` and check its shape. Errors:
 * LMX_ERR_SHAPE "unet.<name>: missing ..." or "unet.<name>: expected [..],
 * got [..]". Marks it used. *out is the file's tensor. */
lmx_status nn_src_find(nn_src *s, const char *name, int ndim, const int64_t *shape,
                       const st_tensor **out);
/* Read a float tensor of the given shape into a fresh lmx_alloc_aligned
 * buffer (free with lmx_free). */
lmx_status nn_src_read(nn_src *s, const char *name, int ndim, const int64_t *shape, float **out);
/* True when the (diffusers) name exists in the source. */
int nn_src_has(nn_src *s, const char *name);

/* Create and register layers. path is the module path; "<path>.weight" and
 * "<path>.bias" are read. *out may be NULL. */
lmx_status nn_load_linear(nn_src *s, nn_layers *reg, nn_layer **out, const char *path,
                          int64_t n_out, int64_t n_in, int bias);
lmx_status nn_load_conv(nn_src *s, nn_layers *reg, nn_layer **out, const char *path,
                        int64_t c_out, int64_t c_in, int k, int stride, int pad, int bias);
/* GroupNorm (groups > 0) or LayerNorm (groups = 0) with affine weight/bias. */
lmx_status nn_load_norm(nn_src *s, nn_norm *n, const char *path, int64_t C, int groups, float eps);

/* Warn about tensors of f under `prefix` that no source marked used (count
 * and the first few names). Names in `ignore` (suffixes) are skipped. */
void nn_report_unused(const st_file *f, const uint8_t *used, const char *prefix,
                      const char *label);

/* snprintf into buf (always NUL-terminated); returns buf. */
char *nn_path(char *buf, size_t n, const char *fmt, ...) LMX_PRINTF(3, 4);

/* ---- ResNet block shared by the UNet and the VAE ----------------------- *
 * diffusers ResnetBlock2D (resnet.py), output_scale_factor 1, "default" time
 * shift: h = conv1(SiLU(GN1(x))) [+ time_emb_proj(temb_act)]; h =
 * conv2(SiLU(GN2(h))); y = shortcut(x) + h, shortcut a 1x1 conv when
 * c_in != c_out. */
typedef struct nn_resnet {
    nn_norm norm1, norm2;
    nn_layer *conv1, *conv2, *temb_proj, *shortcut;
    int64_t c_in, c_out;
} nn_resnet;

/* Load "<path>.norm1" ... ; temb_dim 0 = no time input (VAE). shortcut_name
 * is "conv_shortcut" in diffusers files. */
lmx_status nn_resnet_load(nn_src *s, nn_layers *reg, nn_resnet *r, const char *path,
                          int64_t c_in, int64_t c_out, int64_t temb_dim, int groups, float eps);
void nn_resnet_free(nn_resnet *r);
/* Arena floats one call needs besides its input and output. */
int64_t nn_resnet_temp(const nn_resnet *r, int64_t B, int64_t HW);
/* x[B, H, W, c_in] -> y[B, H, W, c_out]. temb_act: [B, temb_dim] = SiLU(temb),
 * or NULL. y may equal x only when there is no shortcut. */
lmx_status nn_resnet_fwd(nn_run *run, const nn_resnet *r, const float *x, float *y, int64_t H,
                         int64_t W, const float *temb_act);

#endif /* LMX_MODEL_NN_H */
