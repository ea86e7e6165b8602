#!/usr/bin/env python3
"""gen_models.py - the tiny seeded SD1.x-family model and its golden outputs.

Writes, under tests/fixtures/models/:
  tiny-sd/                a diffusers folder (model_index.json, unet/, text_encoder/,
                          vae/, tokenizer/, scheduler/), weights in fp16 safetensors
  tiny-sd.safetensors     the SAME weights as one checkpoint in the original
                          LDM/CompVis layout (model.diffusion_model.*,
                          first_stage_model.*, cond_stage_model.transformer.text_model.*),
                          fp16, with the diffusers configs in __metadata__
                          ("loramix.unet_config", "loramix.text_config", "loramix.vae_config")
  golden_tiny_sd.safetensors   what transformers/diffusers (fp32, CPU) compute on it

The model mirrors SD1.5's structure at toy size: the real CLIP vocabulary (49408
ids, 77 positions) with a 16-wide, 2-layer, 2-head text encoder; a 3-level UNet
(CrossAttn, CrossAttn, Down / Up, CrossAttn, CrossAttn), 2 layers per block,
32 channels, GroupNorm 32, per-block head counts (2, 4, 4); a 4-level VAE (latent
factor 8 as in SD). Every weight is drawn from a seeded normal with std
1/sqrt(fan_in) (norm weights 1 + 0.1 N, biases 0.05 N), then rounded to fp16 so
the fp16 files hold exactly the values used in fp32.

The LDM names are produced by our own diffusers->LDM map (the inverse of
diffusers' single_file_utils); the script checks that diffusers' converters map
the single file back to exactly the folder's tensors, and that the pipeline
loaded from the single file gives identical outputs.

Golden tensors are NHWC (the C layout) wherever a tensor is an image or latent.

Also: the counter-based hash initialiser shared with src/core/hashinit.c (item 6
of the models brief): see hash_uniform() and --sd15-parity.

Run:  OMP_NUM_THREADS=2 /opt/lmxref/bin/python reference/gen_models.py
"""
import argparse
import gzip
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import FIXTURES, ROOT, nchw_to_nhwc, save_golden, setup  # noqa: E402

SEED = 1234
OUT = os.path.join(FIXTURES, "models")
FOLDER = os.path.join(OUT, "tiny-sd")
SINGLE = os.path.join(OUT, "tiny-sd.safetensors")

TEXT_CONFIG = dict(
    architectures=["CLIPTextModel"], vocab_size=49408, hidden_size=16, intermediate_size=64,
    num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
    hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16,
    bos_token_id=0, eos_token_id=2, pad_token_id=1, torch_dtype="float16",
)

UNET_CONFIG = dict(
    sample_size=8, in_channels=4, out_channels=4, center_input_sample=False,
    flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    only_cross_attention=False, block_out_channels=[32, 32, 32], layers_per_block=2,
    downsample_padding=1, mid_block_scale_factor=1, act_fn="silu", norm_num_groups=8,
    norm_eps=1e-5, cross_attention_dim=16, attention_head_dim=[2, 4, 4],
    use_linear_projection=False,
)

VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[32, 32, 32, 32], layers_per_block=1, act_fn="silu", latent_channels=4,
    norm_num_groups=8, sample_size=64, scaling_factor=0.18215,
)

SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.32.2",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
}

PROMPTS = [
    "a photo of a cat",
    "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up",
    "",
    "masterpiece, best quality",
]


# ---- weights ------------------------------------------------------------------

def init_weights(model, seed):
    """Seeded init, independent of torch's module init order: one generator per
    tensor seeded from (seed, index in sorted name order)."""
    names = sorted(n for n, _ in model.named_parameters())
    params = dict(model.named_parameters())
    with torch.no_grad():
        for i, name in enumerate(names):
            p = params[name]
            g = torch.Generator().manual_seed(seed * 100003 + i)
            if name.endswith("token_embedding.weight"):
                v = torch.randn(p.shape, generator=g) * 0.5
            elif name.endswith("position_embedding.weight"):
                v = torch.randn(p.shape, generator=g) * 0.2
            elif p.ndim >= 2:
                fan_in = int(np.prod(p.shape[1:]))
                v = torch.randn(p.shape, generator=g) / np.sqrt(fan_in)
            elif name.endswith(".weight"):  # norm gains
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            else:  # biases, norm shifts
                v = 0.05 * torch.randn(p.shape, generator=g)
            p.copy_(v.half().float())  # fp16-representable


def bytes_to_unicode_list():
    from transformers.models.clip.tokenization_clip import bytes_to_unicode
    return list(bytes_to_unicode().values())


def write_tokenizer(dst):
    os.makedirs(dst, exist_ok=True)
    gz = os.path.join(ROOT, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(gz).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    syms = bytes_to_unicode_list()
    vocab = syms + [s + "</w>" for s in syms] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    with open(os.path.join(dst, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(dst, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    with open(os.path.join(dst, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    tcfg = dict(special, add_prefix_space=False, do_lower_case=True, errors="replace",
                model_max_length=77, tokenizer_class="CLIPTokenizer")
    with open(os.path.join(dst, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=2)


# ---- diffusers -> LDM names (the inverse of diffusers' single_file_utils) ----------

RESNET_UNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
RESNET_VAE = {"conv_shortcut": "nin_shortcut"}
ATTN_VAE = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_prefix_table(cfg):
    """[(diffusers module prefix, LDM prefix, leaf table)] for a UNet config."""
    L = cfg["layers_per_block"]
    n = len(cfg["block_out_channels"])
    t = [("time_embedding.linear_1", "time_embed.0", None), ("time_embedding.linear_2", "time_embed.2", None),
         ("conv_in", "input_blocks.0.0", None), ("conv_norm_out", "out.0", None), ("conv_out", "out.2", None),
         ("mid_block.resnets.0", "middle_block.0", RESNET_UNET), ("mid_block.attentions.0", "middle_block.1", None),
         ("mid_block.resnets.1", "middle_block.2", RESNET_UNET)]
    for i in range(n):
        for j in range(L):
            k = 1 + i * (L + 1) + j
            t.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{k}.0", RESNET_UNET))
            t.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{k}.1", None))
        if i < n - 1:
            t.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{1 + i * (L + 1) + L}.0.op", None))
    for i in range(n):
        has_attn = cfg["up_block_types"][i].startswith("CrossAttn")
        for j in range(L + 1):
            k = i * (L + 1) + j
            t.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{k}.0", RESNET_UNET))
            t.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{k}.1", None))
        if i < n - 1:
            t.append((f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{i * (L + 1) + L}.{2 if has_attn else 1}.conv", None))
    return t


def vae_prefix_table(cfg):
    n = len(cfg["block_out_channels"])
    L = cfg["layers_per_block"]
    t = [("encoder.conv_norm_out", "encoder.norm_out", None), ("decoder.conv_norm_out", "decoder.norm_out", None)]
    for side in ("encoder", "decoder"):
        t += [(f"{side}.mid_block.resnets.0", f"{side}.mid.block_1", RESNET_VAE),
              (f"{side}.mid_block.resnets.1", f"{side}.mid.block_2", RESNET_VAE),
              (f"{side}.mid_block.attentions.0", f"{side}.mid.attn_1", ATTN_VAE)]
    for i in range(n):
        for j in range(L):
            t.append((f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}", RESNET_VAE))
        t.append((f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv", None))
        for j in range(L + 1):
            t.append((f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{n - 1 - i}.block.{j}", RESNET_VAE))
        t.append((f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{n - 1 - i}.upsample.conv", None))
    return t


def map_name(name, table):
    best = None
    for dp, lp, leaf in table:
        if name.startswith(dp + ".") and (best is None or len(dp) > len(best[0])):
            best = (dp, lp, leaf)
    if best is None:
        return name
    dp, lp, leaf = best
    rest = name[len(dp) + 1:]
    if leaf:
        for a in sorted(leaf, key=len, reverse=True):
            if rest.startswith(a + "."):
                rest = leaf[a] + rest[len(a):]
                break
    return lp + "." + rest


def to_ldm(unet_sd, text_sd, vae_sd, ucfg, vcfg):
    out = {}
    ut = unet_prefix_table(ucfg)
    for k, v in unet_sd.items():
        out["model.diffusion_model." + map_name(k, ut)] = v
    for k, v in text_sd.items():
        assert k.startswith("text_model."), k
        out["cond_stage_model.transformer." + k] = v
    vt = vae_prefix_table(vcfg)
    for k, v in vae_sd.items():
        nk = map_name(k, vt)
        if ".mid.attn_1." in nk and v.ndim == 2:
            v = v[:, :, None, None]  # LDM VAE attention projections are 1x1 convs
        out["first_stage_model." + nk] = v
    return out


# ---- build, save, verify --------------------------------------------------------

def build_models():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in TEXT_CONFIG.items() if k != "architectures"}))
    unet = UNet2DConditionModel(**UNET_CONFIG)
    vae = AutoencoderKL(**VAE_CONFIG)
    init_weights(text, SEED + 1)
    init_weights(unet, SEED + 2)
    init_weights(vae, SEED + 3)
    return text.eval(), unet.eval(), vae.eval()


def save_folder(text, unet, vae):
    if os.path.isdir(FOLDER):
        shutil.rmtree(FOLDER)
    os.makedirs(FOLDER)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.32.2",
             "feature_extractor": [None, None], "image_encoder": [None, None],
             "requires_safety_checker": False, "safety_checker": [None, None],
             "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(FOLDER, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    text.half().save_pretrained(os.path.join(FOLDER, "text_encoder"), safe_serialization=True)
    unet.half().save_pretrained(os.path.join(FOLDER, "unet"), safe_serialization=True)
    vae.half().save_pretrained(os.path.join(FOLDER, "vae"), safe_serialization=True)
    text.float(), unet.float(), vae.float()
    write_tokenizer(os.path.join(FOLDER, "tokenizer"))
    os.makedirs(os.path.join(FOLDER, "scheduler"))
    with open(os.path.join(FOLDER, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER_CONFIG, f, indent=2)


def read_config(sub):
    with open(os.path.join(FOLDER, sub, "config.json")) as f:
        return json.load(f)


def save_single(text, unet, vae):
    from safetensors.torch import save_file
    ucfg, vcfg, tcfg = read_config("unet"), read_config("vae"), read_config("text_encoder")
    sd = to_ldm(unet.state_dict(), text.state_dict(), vae.state_dict(), ucfg, vcfg)
    sd = {k: v.detach().half().contiguous() for k, v in sd.items()}
    meta = {"loramix.unet_config": json.dumps(ucfg, sort_keys=True),
            "loramix.text_config": json.dumps(tcfg, sort_keys=True),
            "loramix.vae_config": json.dumps(vcfg, sort_keys=True),
            "format": "pt", "generator": "reference/gen_models.py"}
    tmp = SINGLE + ".tmp"
    save_file(sd, tmp, metadata=meta)
    os.replace(tmp, SINGLE)
    return sd


def verify_single(text, unet, vae):
    """diffusers' own LDM converters must give back exactly the folder's tensors."""
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint,
                                                     convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from safetensors.torch import load_file
    ck = load_file(SINGLE)
    pairs = [("unet", convert_ldm_unet_checkpoint(ck, read_config("unet")), unet),
             ("vae", convert_ldm_vae_checkpoint(ck, read_config("vae")), vae),
             ("text", convert_ldm_clip_checkpoint(ck), text)]
    for label, conv, model in pairs:
        ref = model.state_dict()
        ref = {k: v for k, v in ref.items() if not k.endswith("position_ids")}
        conv = {k: v for k, v in conv.items() if not k.endswith("position_ids")}
        assert set(conv) == set(ref), (label, sorted(set(conv) ^ set(ref))[:10])
        for k in ref:
            assert conv[k].shape == ref[k].shape, (label, k, conv[k].shape, ref[k].shape)
            assert torch.equal(conv[k].float(), ref[k].float()), (label, k)
        print(f"single file: {label}: {len(ref)} tensors map back exactly (diffusers converters)")


def load_reference():
    """Load the three models the way a user would: from the files, in fp32."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(FOLDER, subfolder="tokenizer")
    text = CLIPTextModel.from_pretrained(FOLDER, subfolder="text_encoder", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(FOLDER, subfolder="unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(FOLDER, subfolder="vae", torch_dtype=torch.float32).eval()
    return tok, text, unet, vae


def single_file_pipeline_check(text, unet, vae, ids, ctx, x):
    """Load tiny-sd.safetensors with diffusers' from_single_file (config from the
    folder) and compare outputs with the folder-loaded models."""
    from diffusers import StableDiffusionPipeline
    try:
        pipe = StableDiffusionPipeline.from_single_file(SINGLE, config=FOLDER, local_files_only=True,
                                                        torch_dtype=torch.float32)
    except Exception as e:  # keep the generator usable if the API changes
        print(f"from_single_file check skipped: {type(e).__name__}: {e}")
        return
    with torch.no_grad():
        a = pipe.text_encoder(ids)[0]
        b = text(ids)[0]
        assert torch.equal(a, b), "text encoder differs between single file and folder"
        t = torch.tensor([500.0, 500.0])
        a = pipe.unet(x, t, encoder_hidden_states=ctx).sample
        b = unet(x, t, encoder_hidden_states=ctx).sample
        assert torch.equal(a, b), "unet differs between single file and folder"
        z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
        assert torch.equal(pipe.vae.decode(z).sample, vae.decode(z).sample), "vae differs"
    print("single file: StableDiffusionPipeline.from_single_file gives identical outputs")


def goldens(tok, text, unet, vae):
    g = {}
    # tokens
    ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    g["tokens.ids"] = ids  # [4, 77] int64
    with torch.no_grad():
        # text encoder: prompt 0 and the empty negative prompt, plain and clip_skip=1
        out = text(ids, output_hidden_states=True)
        g["text.last_hidden_state"] = out.last_hidden_state  # [4, 77, C] for all prompts
        g["text.clip_skip1"] = text.text_model.final_layer_norm(out.hidden_states[-2])  # [4,77,C]
        ctx = torch.stack([out.last_hidden_state[2], out.last_hidden_state[0]])  # [uncond, cond]
        g["unet.context"] = ctx  # [2, 77, C]
        gen = torch.Generator().manual_seed(SEED + 10)
        x8 = torch.randn(2, 4, 8, 8, generator=gen)
        g["unet.x_8x8"] = nchw_to_nhwc(x8)
        for t in (999.0, 500.0, 1.0, 742.25):
            tt = torch.tensor([t, t], dtype=torch.float32)
            eps = unet(x8, tt, encoder_hidden_states=ctx).sample
            g[f"unet.eps_8x8_t{t:g}"] = nchw_to_nhwc(eps)
        # per-sample timesteps
        tt = torch.tensor([999.0, 10.0])
        g["unet.eps_8x8_t999_10"] = nchw_to_nhwc(unet(x8, tt, encoder_hidden_states=ctx).sample)
        # odd latent: 9 x 7 exercises the upsampler's resize-to-skip path
        x97 = torch.randn(2, 4, 9, 7, generator=gen)
        g["unet.x_9x7"] = nchw_to_nhwc(x97)
        g["unet.eps_9x7_t500"] = nchw_to_nhwc(
            unet(x97, torch.tensor([500.0, 500.0]), encoder_hidden_states=ctx).sample)
        # VAE
        z = torch.randn(1, 4, 8, 8, generator=gen)
        g["vae.z_8x8"] = nchw_to_nhwc(z)
        g["vae.decode_8x8"] = nchw_to_nhwc(vae.decode(z).sample)  # [1, 64, 64, 3]
        z2 = torch.randn(2, 4, 6, 5, generator=gen)
        g["vae.z_6x5"] = nchw_to_nhwc(z2)
        g["vae.decode_6x5"] = nchw_to_nhwc(vae.decode(z2).sample)  # [2, 48, 40, 3]
        # diffusers' tiled decode (tile = sample_size / 8 = 8 latents, overlap 0.25)
        z3 = torch.randn(1, 4, 14, 10, generator=gen)
        g["vae.z_14x10"] = nchw_to_nhwc(z3)
        vae.enable_tiling()
        g["vae.decode_tiled_14x10"] = nchw_to_nhwc(vae.decode(z3).sample)  # [1, 112, 80, 3]
        vae.disable_tiling()
        img = torch.rand(1, 3, 64, 48, generator=gen) * 2 - 1
        g["vae.image_64x48"] = nchw_to_nhwc(img)
        h = vae.encoder(img)
        moments = vae.quant_conv(h)
        g["vae.moments_64x48"] = nchw_to_nhwc(moments)  # [1, 8, 6, 8]: mean | logvar
    for k, v in g.items():
        if v.is_floating_point():
            print(f"  {k:28s} {tuple(v.shape)} absmax {v.abs().max().item():.3f} std {v.std().item():.3f}")
    return g, ids, ctx, x8


# ---- item 6: full-size SD1.5 parity with hash-initialised weights ------------------------

U64 = np.uint64
MASK64 = (1 << 64) - 1


def hash_name(name):
    """FNV-1a 64 of the name's UTF-8 bytes (src/core/hashinit.c lmx_hash_name)."""
    h = 0xcbf29ce484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & MASK64
    return h


def hash_t(h, n, start=0):
    """t_i in [-1, 1) for i = start .. start+n-1, float32, exactly as hashinit.c."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + n + 1, dtype=U64)
        z = U64(h) + i * U64(0x9E3779B97F4A7C15)
        z ^= z >> U64(30)
        z *= U64(0xBF58476D1CE4E5B9)
        z ^= z >> U64(27)
        z *= U64(0x94D049BB133111EB)
        z ^= z >> U64(31)
    u = (z >> U64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return u * np.float32(2.0) - np.float32(1.0)


def hash_uniform(name, n, a):
    return hash_t(hash_name(name), n) * np.float32(a)


def hash_fill(name, shape):
    """lmx_hash_fill: the weight rules of hashinit.h."""
    n = int(np.prod(shape)) if len(shape) else 1
    t = hash_t(hash_name(name), n)
    if len(shape) >= 2:
        a = np.float32(np.sqrt(3.0 / float(np.prod(shape[1:]))))
        v = t * a
    elif name.endswith(".bias"):
        v = t * np.float32(0.1)
    else:
        v = np.float32(1.0) + t * np.float32(0.1)
    return v.reshape(shape)


def hash_init(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(hash_fill(name, tuple(p.shape))))


SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                 layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=768)
SD15_UNET = dict(sample_size=64, cross_attention_dim=768)  # everything else: the class defaults = SD1.5
SD15_VAE = dict(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4,
                sample_size=512)
SD15_IDS = [49406, 320, 1125, 539, 320, 2368, 49407, 49407]
SD15_T = [999.0, 250.0]


def sd15_parity():
    """Outputs of the full-size SD1.5 networks with hash weights on hash inputs.
    The C test (tests/golden/test_sd15_parity.c) regenerates weights and inputs."""
    import time
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    g = {}
    t0 = time.time()
    with torch.no_grad():
        text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).eval()
        hash_init(text)
        ids = torch.tensor([SD15_IDS])
        out = text(ids, output_hidden_states=True)
        g["text.last_hidden_state"] = out.last_hidden_state  # [1, 8, 768]
        g["text.clip_skip1"] = text.text_model.final_layer_norm(out.hidden_states[-2])
        del text, out
        print(f"text encoder done ({time.time() - t0:.0f} s)")

        unet = UNet2DConditionModel(**SD15_UNET).eval()
        hash_init(unet)
        x = torch.from_numpy(hash_uniform("input.unet.x", 2 * 8 * 8 * 4, 1.0).reshape(2, 8, 8, 4)).permute(0, 3, 1, 2)
        ctx = torch.from_numpy(hash_uniform("input.unet.context", 2 * 77 * 768, 1.0).reshape(2, 77, 768))
        eps = unet(x.contiguous(), torch.tensor(SD15_T), encoder_hidden_states=ctx).sample
        g["unet.eps_8x8"] = nchw_to_nhwc(eps)  # [2, 8, 8, 4]
        del unet
        print(f"unet done ({time.time() - t0:.0f} s)")

        vae = AutoencoderKL(**SD15_VAE).eval()
        hash_init(vae)
        z = torch.from_numpy(hash_uniform("input.vae.z", 8 * 8 * 4, 1.0).reshape(1, 8, 8, 4)).permute(0, 3, 1, 2)
        g["vae.decode_8x8"] = nchw_to_nhwc(vae.decode(z.contiguous()).sample)  # [1, 64, 64, 3]
        img = torch.from_numpy(hash_uniform("input.vae.image", 64 * 64 * 3, 1.0).reshape(1, 64, 64, 3)).permute(0, 3, 1, 2)
        g["vae.moments_64x64"] = nchw_to_nhwc(vae.quant_conv(vae.encoder(img.contiguous())))  # [1, 8, 8, 8]
        del vae
        print(f"vae done ({time.time() - t0:.0f} s)")
    for k, v in g.items():
        print(f"  {k:26s} {tuple(v.shape)} absmax {v.abs().max().item():.3f} std {v.std().item():.3f}")
    save_golden(os.path.join(OUT, "golden_sd15_hash.safetensors"), g, 0,
                {"weights": "src/core/hashinit.h rules on the diffusers/transformers tensor names",
                 "inputs": "input.unet.x [2,8,8,4] NHWC, input.unet.context [2,77,768], input.vae.z [1,8,8,4] NHWC, "
                           "input.vae.image [1,64,64,3] NHWC: lmx_hash_uniform(name, a=1)",
                 "ids": json.dumps(SD15_IDS), "timesteps": json.dumps(SD15_T)})


def sd15_ldm_keys():
    """Names and shapes of a full SD1.5 single-file checkpoint (original layout), for
    the C test that loads a sparse all-zero file with them (no weights committed).
    Checked against diffusers' own LDM converters; extra keys real checkpoints carry
    (EMA bookkeeping, schedule buffers, position_ids) are appended."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint,
                                                     convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from transformers import CLIPTextConfig, CLIPTextModel
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
    usd, vsd, tsd = unet.state_dict(), vae.state_dict(), text.state_dict()
    tsd = {k: v for k, v in tsd.items() if not k.endswith("position_ids")}
    ck = to_ldm(usd, tsd, vsd, dict(unet.config), dict(vae.config))
    for label, conv, ref in [("unet", convert_ldm_unet_checkpoint(ck, dict(unet.config)), usd),
                             ("vae", convert_ldm_vae_checkpoint(ck, dict(vae.config)), vsd),
                             ("text", convert_ldm_clip_checkpoint(ck), tsd)]:
        assert set(conv) == set(ref), (label, sorted(set(conv) ^ set(ref))[:5])
        for k in ref:
            assert tuple(conv[k].shape) == tuple(ref[k].shape), (label, k)
    keys = [[k, "F16", list(v.shape)] for k, v in ck.items()]
    keys.append(["cond_stage_model.transformer.text_model.embeddings.position_ids", "I64", [1, 77]])
    keys += [[k, "F32", [1000]] for k in ("betas", "alphas_cumprod", "alphas_cumprod_prev")]
    keys += [["model_ema.decay", "F32", []], ["model_ema.num_updates", "I32", []]]
    path = os.path.join(OUT, "sd15_ldm_keys.json")
    with open(path, "w") as f:
        json.dump({"comment": "SD1.5 original-layout checkpoint: [name, dtype, shape]; written by "
                              "reference/gen_models.py --sd15-parity", "tensors": keys}, f, separators=(",", ":"))
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 1024:.1f} KiB, {len(keys)} tensors)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sd15-parity", action="store_true",
                    help="(item 6) write the full-size SD1.5 hash-initialised parity goldens")
    args = ap.parse_args()
    setup(SEED)
    if args.sd15_parity:
        sd15_ldm_keys()
        sd15_parity()
        return
    text, unet, vae = build_models()
    save_folder(text, unet, vae)
    save_single(text, unet, vae)
    verify_single(text, unet, vae)
    tok, rtext, runet, rvae = load_reference()
    g, ids, ctx, x8 = goldens(tok, rtext, runet, rvae)
    save_golden(os.path.join(OUT, "golden_tiny_sd.safetensors"), g, SEED,
                {"model": "tests/fixtures/models/tiny-sd", "layout": "NHWC for images and latents",
                 "prompts": json.dumps(PROMPTS)})
    single_file_pipeline_check(rtext, runet, rvae, ids[:2], ctx, x8)
    total = 0
    for dp, _, files in os.walk(OUT):
        for fn in files:
            total += os.path.getsize(os.path.join(dp, fn))
    print(f"tests/fixtures/models: {total / 1e6:.2f} MB in all")


if __name__ == "__main__":
    main()
