/*
 * clip_text.h - the CLIP text transformer of SD1.x (transformers
 * CLIPTextModel), fp32.
 *
 * token + position embedding, pre-LN encoder layers (LN -> causal
 * multi-head self-attention -> +, LN -> fc1 -> quick_gelu -> fc2 -> +), final
 * LayerNorm. No padding mask (SD1.5 passes none): pad positions are computed
 * like tokens. clip_skip k >= 1 takes the output of layer (n_layers - k)
 * and applies the final LayerNorm to it, as diffusers' encode_prompt does
 * (clip_skip 1 = "CLIP skip 2" in A1111); 0 gives last_hidden_state.
 *
 * Semantics: transformers 4.45.1 models/clip/modeling_clip.py;
 * docs/numerics.md §3. Module paths for LoRA: "text_model.encoder.layers.{l}.
 * self_attn.{q,k,v,out}_proj", "text_model.encoder.layers.{l}.mlp.fc{1,2}".
 */
#ifndef LMX_MODEL_CLIP_TEXT_H
#define LMX_MODEL_CLIP_TEXT_H

#include "model/config.h"
#include "model/nn.h"

typedef struct clip_text clip_text;

/* Build from a weight source whose names are transformers' ("text_model.
 * embeddings.token_embedding.weight", ...). Nothing is left on error. */
lmx_status clip_text_load(clip_text **out, nn_src *src, const clip_text_config *cfg);
void clip_text_free(clip_text *m);

const clip_text_config *clip_text_cfg(const clip_text *m);
const nn_layers *clip_text_layers(const clip_text *m);

/* Arena bytes for B sequences of L tokens without LoRA side paths (_lora:
 * with hooks whose largest adapter rank is lora_rank). */
size_t clip_text_arena_bytes(const clip_text *m, int B, int L);
size_t clip_text_arena_bytes_lora(const clip_text *m, int lora_rank, int B, int L);

/* out[B, L, hidden] from ids[B, L] (L <= max positions; ids < vocab).
 * clip_skip: 0 = last_hidden_state, k in 1..n_layers-1 as above. */
lmx_status clip_text_forward(const clip_text *m, nn_run *run, const int64_t *ids, int B, int L,
                             int clip_skip, float *out);

#endif /* LMX_MODEL_CLIP_TEXT_H */
