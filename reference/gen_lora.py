#!/usr/bin/env python3
"""gen_lora.py - tiny LoRA files for the tiny SD model and what diffusers computes with them.

Writes, under tests/fixtures/lora/ (all small, seeded):

LoRA files for tests/fixtures/models/tiny-sd (random weights, fixed seeds):
  char_kohya.safetensors      "character": kohya sd-scripts format (lora_unet_* / lora_te_*,
                              lora_down / lora_up / alpha), diffusers UNet dialect, fp16,
                              rank 4, alpha 2 (scale 0.5). UNet attention linears, feed-forward,
                              proj_in/proj_out (1x1 convs), resnet conv1 (3x3 down + 1x1 up),
                              conv_shortcut, time_emb_proj, a downsampler (stride 2) and an
                              upsampler conv; text encoder q/k/v/out/fc1/fc2 of both layers; plus
                              modules on conv_in and time_embedding.linear_1 that diffusers drops.
                              kohya training metadata (ss_*), triggers "scarlett", "short red hair".
  style_peft.safetensors      "style": PEFT/diffusers format (unet.<path>.lora_A.weight /
                              lora_B, text_encoder.text_model...), fp32, rank 2, no alpha (scale
                              1). UNet attention + proj_in/out, TE q_proj/v_proj. Trigger
                              "film grain".
  object_kohya.safetensors    "object": kohya, bf16, rank 3, alpha 4.5 (scale 1.5): conv-heavy
                              (every resnet conv1/conv2, downsamplers, upsamplers) plus attn2
                              to_k/to_v; TE fc1/fc2 only. Trigger "transparent umbrella".
  mixed_kohya.safetensors     non-uniform alpha and rank: UNet linears rank 4 (alpha 4, ff alpha
                              2, to_k alpha 1), UNet 3x3 convs rank 2 (alpha 1); TE rank 4 with
                              self-attention alpha 8 (layer 1 q_proj alpha 1), fc1 alpha 2, fc2
                              without alpha. diffusers 0.32.2 scales these differently from
                              "each module's own alpha/rank" (lora.md).

Renamed copies (same numbers, other spellings; the C tests check they give the same output):
  char_kohya_ldm.safetensors  char_kohya with the UNet keys in the LDM dialect (input_blocks...).
  style_diffusers_old.safetensors  style_peft in older diffusers spellings: UNet attention as
                              "<attn>.processor.to_q_lora.down.weight" (to_out_lora <-> to_out.0),
                              proj_in/out as "lora.down.weight", TE as
                              "text_encoder.text_model...q_proj.lora_linear_layer.down.weight".
  style_peft_prefixed.safetensors  style_peft with PEFT wrapper prefixes: UNet keys
                              "base_model.model.<path>.lora_A.weight", TE keys
                              "text_encoder.encoder.layers..." (no "text_model.").

Bad files for the fault / CLI tests:
  bad_keys.safetensors        kohya with misspelled module names (unmatched keys).
  loha.safetensors            LyCORIS LoHa (hada_w1_a ...).
  sdxl_kohya.safetensors      an SDXL LoRA (lora_te1_/lora_te2_, 2048-wide attn2 to_k).

SD1.5-shaped (for `loramix lora inspect` without --model, which matches against SD1.5's layers):
  sd15_mini_kohya.safetensors  rank 1, fp16: a few UNet modules in the diffusers dialect and in
                              the LDM dialect (a 3x3 conv among them), two text-encoder layers.

Goldens (golden_lora.safetensors), fp32 CPU, diffusers 0.32.2 + peft 0.12.0:
  pipe.load_lora_weights(file, adapter_name=name) for each file;
  pipe.set_adapters(names, adapter_weights=[{"unet": u_i, "text_encoder": t_i}, ...]);
  text encoder: pipe.encode_prompt(prompt, "cpu", 1, True, negative, lora_scale=lam)
      -> "<set>.te.embeds" [2, 77, 16] = [negative, prompt] (ids in "te.ids" [2, 77]);
  UNet: pipe.unet(x, t, encoder_hidden_states=ctx, cross_attention_kwargs={"scale": lam})
      with x = "unet.x" [2, 8, 8, 4] NHWC, ctx = "unet.context" [2, 77, 16], t in {999, 500}
      -> "<set>.unet.t999", "<set>.unet.t500" [2, 8, 8, 4] NHWC;
  "base.*": the same without LoRA (set_adapters not called, adapters disabled).
  Sets (metadata "sets", JSON): char (1 LoRA), style (1 LoRA, PEFT), three (char, style,
  object with per-LoRA unet/te weights), mixed (diffusers' non-uniform scaling).

Pipeline goldens (pipeline_lora.safetensors, same layout as pipeline/golden_pipeline.safetensors:
"<case>.latents" NCHW fp32 final latents, "<case>.image_u8" int32 [n, H, W, 3], metadata "cases"
JSON with the settings and the LoRAs): StableDiffusionPipeline on tiny-sd,
DPMSolverMultistepScheduler.from_config(pipe.scheduler.config) (dpmsolver++ 2M), 64x64, seed,
cross_attention_kwargs={"scale": lora_scale}, output_type="np" then (img*255).round() as
numpy_to_pil, with 1 LoRA and with 3 LoRAs.

Run:  OMP_NUM_THREADS=2 /opt/lmxref/bin/python reference/gen_lora.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import common  # noqa: E402
from common import FIXTURES, nchw_to_nhwc, save_golden, setup  # noqa: E402

SEED = 4321
OUT = os.path.join(FIXTURES, "lora")
FOLDER = os.path.join(FIXTURES, "models", "tiny-sd")
LAM = 0.8

PROMPT = "a photo of scarlett, short red hair, film grain, transparent umbrella"
NEGATIVE = "blurry, low quality"


# ---- module lists ------------------------------------------------------------------

def unet_modules(unet):
    """{path: module} for every Linear / Conv2d of the UNet, in module order."""
    out = {}
    for name, m in unet.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            out[name] = m
    return out


def te_modules(text):
    out = {}
    for name, m in text.named_modules():
        if isinstance(m, torch.nn.Linear) and ".encoder.layers." in name:
            out[name] = m
    return out


def make_pair(mod, r, gen, up_std=0.35):
    """(down, up) for a module: down ~ N(0, 1/fan_in), up ~ N(0, up_std^2 / r)."""
    if isinstance(mod, torch.nn.Linear):
        down = torch.randn(r, mod.in_features, generator=gen) / np.sqrt(mod.in_features)
        up = torch.randn(mod.out_features, r, generator=gen) * (up_std / np.sqrt(r))
    else:
        kh, kw = mod.kernel_size
        fan = mod.in_channels * kh * kw
        down = torch.randn(r, mod.in_channels, kh, kw, generator=gen) / np.sqrt(fan)
        up = torch.randn(mod.out_channels, r, 1, 1, generator=gen) * (up_std / np.sqrt(r))
    return down, up


def kohya_name(comp, path):
    return ("lora_unet_" if comp == "unet" else "lora_te_") + path.replace(".", "_")


# ---- LDM dialect (the same tables as src/model/keymap.c, kohya-flattened) ------------

RESNET_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def to_ldm(path, cfg):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_models import map_name, unet_prefix_table
    return map_name(path + ".weight", unet_prefix_table(cfg))[:-len(".weight")]


# ---- the files ------------------------------------------------------------------------

def meta_kohya(dim, alpha, tags, name):
    return {
        "ss_network_module": "networks.lora", "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha), "ss_base_model_version": "sd_v1",
        "ss_output_name": name, "ss_num_epochs": "10", "ss_learning_rate": "0.0001",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_tag_frequency": json.dumps(tags),
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.title": name,
    }


def save(name, tensors, meta=None):
    path = os.path.join(OUT, name)
    tmp = path + ".tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=meta or {"format": "pt"})
    os.replace(tmp, path)
    print(f"wrote tests/fixtures/lora/{name} ({os.path.getsize(path) / 1024:.1f} KiB, "
          f"{len(tensors)} tensors)")
    return path


def build_char(unet, text, gen):
    """kohya, diffusers dialect, fp16, rank 4 alpha 2."""
    um, tm = unet_modules(unet), te_modules(text)
    pick = []
    for p, m in um.items():
        if ("attentions" in p and ("transformer_blocks" in p or p.endswith(("proj_in", "proj_out")))):
            pick.append(p)
        elif p.endswith((".resnets.0.conv1", "conv_shortcut", "resnets.1.time_emb_proj")):
            pick.append(p)
        elif p in ("down_blocks.0.downsamplers.0.conv", "up_blocks.1.upsamplers.0.conv",
                   "conv_in", "time_embedding.linear_1"):
            pick.append(p)
    sd = {}
    for comp, mods, paths in (("unet", um, pick), ("te", tm, list(tm))):
        for p in paths:
            d, u = make_pair(mods[p], 4, gen)
            k = kohya_name(comp, p)
            sd[k + ".lora_down.weight"] = d.half()
            sd[k + ".lora_up.weight"] = u.half()
            sd[k + ".alpha"] = torch.tensor(2.0).half()
    tags = {"10_scarlett": {"scarlett": 40, "short red hair": 38, "blue eyes": 21, "1girl": 40,
                             "smile": 12, "looking at viewer": 9}}
    return sd, meta_kohya(4, 2, tags, "char_kohya")


def build_style(unet, text, gen):
    """PEFT, fp32, rank 2, no alpha."""
    um, tm = unet_modules(unet), te_modules(text)
    sd = {}
    for p, m in um.items():
        if "attentions" in p and ("attn" in p or p.endswith(("proj_in", "proj_out"))):
            d, u = make_pair(m, 2, gen, up_std=0.25)
            sd[f"unet.{p}.lora_A.weight"] = d
            sd[f"unet.{p}.lora_B.weight"] = u
    for p, m in tm.items():
        if p.endswith(("q_proj", "v_proj")):
            d, u = make_pair(m, 2, gen, up_std=0.25)
            sd[f"text_encoder.{p}.lora_A.weight"] = d
            sd[f"text_encoder.{p}.lora_B.weight"] = u
    return sd, {"format": "pt"}


def build_object(unet, text, gen):
    """kohya, bf16, rank 3 alpha 4.5, conv-heavy."""
    um, tm = unet_modules(unet), te_modules(text)
    sd = {}
    for p, m in um.items():
        conv = p.endswith((".conv1", ".conv2")) or "samplers" in p
        kv = "attn2" in p and p.endswith(("to_k", "to_v"))
        if conv or kv:
            d, u = make_pair(m, 3, gen, up_std=0.12)
            k = kohya_name("unet", p)
            sd[k + ".lora_down.weight"] = d.bfloat16()
            sd[k + ".lora_up.weight"] = u.bfloat16()
            sd[k + ".alpha"] = torch.tensor(4.5).bfloat16()
    for p, m in tm.items():
        if p.endswith(("fc1", "fc2")):
            d, u = make_pair(m, 3, gen, up_std=0.12)
            k = kohya_name("te", p)
            sd[k + ".lora_down.weight"] = d.bfloat16()
            sd[k + ".lora_up.weight"] = u.bfloat16()
            sd[k + ".alpha"] = torch.tensor(4.5).bfloat16()
    tags = {"5_umbrella": {"transparent umbrella": 30, "rain": 11, "outdoors": 8}}
    return sd, meta_kohya(3, 4.5, tags, "object_kohya")


def build_mixed(unet, text, gen):
    """Non-uniform alpha/rank (see the module docstring)."""
    um, tm = unet_modules(unet), te_modules(text)
    sd = {}
    for p, m in um.items():
        if "transformer_blocks" in p:
            r, a = 4, (1.0 if p.endswith("to_k") else 2.0 if ".ff." in p else 4.0)
        elif p.endswith(".conv1"):
            r, a = 2, 1.0
        else:
            continue
        d, u = make_pair(m, r, gen, up_std=0.2)
        k = kohya_name("unet", p)
        sd[k + ".lora_down.weight"] = d
        sd[k + ".lora_up.weight"] = u
        sd[k + ".alpha"] = torch.tensor(a)
    for p, m in tm.items():
        d, u = make_pair(m, 4, gen, up_std=0.2)
        k = kohya_name("te", p)
        sd[k + ".lora_down.weight"] = d
        sd[k + ".lora_up.weight"] = u
        if "self_attn" in p:
            sd[k + ".alpha"] = torch.tensor(1.0 if p.endswith("layers.1.self_attn.q_proj") else 8.0)
        elif p.endswith("fc1"):
            sd[k + ".alpha"] = torch.tensor(2.0)
    return sd, {"format": "pt"}


def ldm_copy(sd, cfg):
    out = {}
    for k, v in sd.items():
        stem, _, suffix = k.partition(".")
        if stem.startswith("lora_unet_"):
            # find the diffusers path whose flattened name is the stem
            path = STEM_TO_PATH[stem]
            stem = "lora_unet_" + to_ldm(path, cfg).replace(".", "_")
        out[stem + "." + suffix] = v
    return out


def old_copy(sd):
    out = {}
    proc = {"to_q": "to_q_lora", "to_k": "to_k_lora", "to_v": "to_v_lora", "to_out.0": "to_out_lora"}
    for k, v in sd.items():
        role = "down" if k.endswith("lora_A.weight") else "up"
        path = k[:-len(".lora_A.weight")]
        if path.startswith("unet."):
            done = False
            for a, b in proc.items():
                if path.endswith("." + a):
                    base = path[:-len(a) - 1]
                    out[f"{base}.processor.{b}.{role}.weight"] = v
                    done = True
            if not done:
                out[f"{path}.lora.{role}.weight"] = v
        else:
            out[f"{path}.lora_linear_layer.{role}.weight"] = v
    return out


def prefixed_copy(sd):
    out = {}
    for k, v in sd.items():
        if k.startswith("unet."):
            out["base_model.model." + k[len("unet."):]] = v
        else:
            out[k.replace("text_encoder.text_model.", "text_encoder.")] = v
    return out


STEM_TO_PATH = {}


def bad_files(unet, text, gen):
    um = unet_modules(unet)
    sd = {}
    p = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    d, u = make_pair(um[p], 2, gen)
    sd[kohya_name("unet", p) + ".lora_down.weight"] = d.half()
    sd[kohya_name("unet", p) + ".lora_up.weight"] = u.half()
    for bad in ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_qq",
                "lora_unet_middle_blok_attentions_0_proj_in", "lora_te_text_model_encoder_layers_7_mlp_fc1"):
        sd[bad + ".lora_down.weight"] = d.half()
        sd[bad + ".lora_up.weight"] = u.half()
        sd[bad + ".alpha"] = torch.tensor(2.0)
    save("bad_keys.safetensors", sd)
    # LoHa
    k = kohya_name("unet", p)
    loha = {k + ".hada_w1_a": torch.randn(32, 4), k + ".hada_w1_b": torch.randn(4, 32),
            k + ".hada_w2_a": torch.randn(32, 4), k + ".hada_w2_b": torch.randn(4, 32),
            k + ".alpha": torch.tensor(4.0)}
    save("loha.safetensors", loha, {"ss_network_module": "lycoris.kohya",
                                    "ss_network_args": json.dumps({"algo": "loha"})})
    # SDXL (shapes of SDXL's attn2 and its two text encoders, rank 2)
    xl = {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.randn(2, 2048),
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.randn(640, 2),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.randn(2, 768),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.randn(768, 2),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.randn(2, 1280),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.randn(1280, 2),
    }
    save("sdxl_kohya.safetensors", {k: v.half() for k, v in xl.items()},
         {"ss_base_model_version": "sdxl_base_v1-0",
          "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})


def sd15_mini(gen):
    """Rank-1 kohya LoRA with SD1.5's shapes (no model needed to write it)."""
    mods = [  # (kohya stem, out, in, k)
        ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320, 1),
        ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 320, 768, 1),
        ("lora_unet_up_blocks_3_attentions_2_proj_out", 320, 320, 1),
        ("lora_unet_mid_block_resnets_0_conv1", 1280, 1280, 3),
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_ff_net_2", 640, 2560, 1),
        ("lora_unet_output_blocks_11_1_transformer_blocks_0_attn1_to_out_0", 320, 320, 1),
        ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768, 768, 1),
        ("lora_te_text_model_encoder_layers_11_mlp_fc1", 3072, 768, 1),
    ]
    sd = {}
    for k, o, i, ks in mods:
        if ks == 1:
            d, u = torch.randn(1, i, generator=gen), torch.randn(o, 1, generator=gen)
            if "proj_out" in k:
                d, u = d[:, :, None, None], u[:, :, None, None]
        else:
            d, u = torch.randn(1, i, ks, ks, generator=gen), torch.randn(o, 1, 1, 1, generator=gen)
        sd[k + ".lora_down.weight"] = (d * 0.02).half()
        sd[k + ".lora_up.weight"] = (u * 0.02).half()
        sd[k + ".alpha"] = torch.tensor(1.0).half()
    tags = {"3_mini": {"mini": 3}}
    save("sd15_mini_kohya.safetensors", sd, meta_kohya(1, 1, tags, "sd15_mini_kohya"))


# ---- goldens ---------------------------------------------------------------------------

SETS = {
    "char": [("char", "char_kohya.safetensors", 1.0, 1.0)],
    "style": [("style", "style_peft.safetensors", 0.9, 1.1)],
    "three": [("char", "char_kohya.safetensors", 1.0, 1.0),
              ("style", "style_peft.safetensors", 0.7, 0.5),
              ("object", "object_kohya.safetensors", 1.2, 0.9)],
    "mixed": [("mixed", "mixed_kohya.safetensors", 1.0, 1.0)],
}


def load_pipe():
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, safety_checker=None,
                                                   requires_safety_checker=False,
                                                   local_files_only=True, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def activate(pipe, entries):
    loaded = set(pipe.get_list_adapters().get("unet", [])) | set(pipe.get_list_adapters().get("text_encoder", []))
    for name, fname, _, _ in entries:
        if name not in loaded:
            pipe.load_lora_weights(os.path.join(OUT, fname), adapter_name=name)
    pipe.enable_lora()
    pipe.set_adapters([e[0] for e in entries],
                      adapter_weights=[{"unet": e[2], "text_encoder": e[3]} for e in entries])


def golden_outputs(pipe, tag, g, x, ctx):
    with torch.no_grad():
        pe, ne = pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE, lora_scale=LAM)
        g[f"{tag}.te.embeds"] = torch.cat([ne, pe])
        for t in (999.0, 500.0):
            tt = torch.tensor([t, t])
            eps = pipe.unet(x, tt, encoder_hidden_states=ctx,
                            cross_attention_kwargs={"scale": LAM}).sample
            g[f"{tag}.unet.t{t:g}"] = nchw_to_nhwc(eps)


def goldens():
    pipe = load_pipe()
    g = {}
    ids = pipe.tokenizer([NEGATIVE, PROMPT], padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids
    g["te.ids"] = ids
    gen = torch.Generator().manual_seed(SEED + 7)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    ctx = torch.randn(2, 77, 16, generator=gen)
    g["unet.x"] = nchw_to_nhwc(x)
    g["unet.context"] = ctx
    golden_outputs(pipe, "base", g, x, ctx)
    for tag, entries in SETS.items():
        activate(pipe, entries)
        golden_outputs(pipe, tag, g, x, ctx)
        pipe.disable_lora()
        d = (g[f"{tag}.unet.t500"] - g["base.unet.t500"]).abs().max().item()
        dt = (g[f"{tag}.te.embeds"] - g["base.te.embeds"]).abs().max().item()
        print(f"  {tag:6s} |unet - base| {d:.3f}   |te - base| {dt:.3f}")
    # mixed: what diffusers' config made of the non-uniform file (for the docs)
    activate(pipe, SETS["mixed"])
    sc = {}
    for comp, model in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder)):
        for name, m in model.named_modules():
            if hasattr(m, "scaling") and "mixed" in getattr(m, "scaling", {}):
                sc[f"{comp}.{name}"] = m.scaling["mixed"] / 1.0
    pipe.disable_lora()
    sets_meta = {k: [dict(name=e[0], file=e[1], unet_scale=e[2], te_scale=e[3]) for e in v]
                 for k, v in SETS.items()}
    save_golden("lora/golden_lora.safetensors", g, SEED, extra_meta={
        "sets": json.dumps(sets_meta), "lora_scale": str(LAM), "prompt": PROMPT,
        "negative_prompt": NEGATIVE, "mixed_scalings": json.dumps(sc, sort_keys=True),
        "call": "load_lora_weights(file, adapter_name); set_adapters(names, [{unet, text_encoder}]);"
                " encode_prompt(prompt, cpu, 1, True, negative, lora_scale); unet(x, t, ctx,"
                " cross_attention_kwargs={scale})"})
    return pipe


PIPE_CASES = [
    ("lora1", dict(prompt="a photo of scarlett, short red hair", negative="blurry",
                   steps=6, guidance=7.5, seed=42, width=64, height=64),
     SETS["char"]),
    ("lora3", dict(prompt=PROMPT, negative="blurry, low quality", steps=6, guidance=7.5, seed=43,
                   width=64, height=64),
     SETS["three"]),
]


def pipeline_goldens(pipe):
    import diffusers
    pipe.scheduler = diffusers.DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    tensors, meta = {}, []
    for name, s, entries in PIPE_CASES:
        activate(pipe, entries)
        final = {}

        def grab(p, i, t, kw):
            final["latents"] = kw["latents"].detach().clone()
            return kw

        gen = torch.manual_seed(s["seed"])
        out = pipe(prompt=s["prompt"], negative_prompt=s["negative"] or None,
                   num_inference_steps=s["steps"], guidance_scale=s["guidance"],
                   width=s["width"], height=s["height"], generator=gen,
                   cross_attention_kwargs={"scale": LAM}, output_type="np",
                   callback_on_step_end=grab, callback_on_step_end_tensor_inputs=["latents"])
        pipe.disable_lora()
        u8 = (out.images * 255).round().astype("uint8")
        tensors[f"{name}.latents"] = final["latents"]
        tensors[f"{name}.image_u8"] = torch.from_numpy(u8.astype(np.int32))
        tensors[f"{name}.timesteps"] = pipe.scheduler.timesteps.to(torch.float32)
        case = dict(name=name, scheduler="DPMSolverMultistepScheduler", n_images=1, clip_skip=0,
                    lora_scale=LAM, loras=[dict(name=e[0], file="tests/fixtures/lora/" + e[1],
                                                unet_scale=e[2], te_scale=e[3]) for e in entries], **s)
        meta.append(case)
        print(f"  {name}: latents |max| {final['latents'].abs().max():.3f}, image mean {u8.mean():.1f}")
    save_golden("lora/pipeline_lora.safetensors", tensors, SEED, extra_meta={
        "cases": json.dumps(meta),
        "call": "pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config);"
                " load_lora_weights + set_adapters(names, [{unet, text_encoder}]);"
                " pipe(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height,"
                " generator=torch.manual_seed(seed), cross_attention_kwargs={'scale': lora_scale},"
                " output_type='np'); latents from callback_on_step_end at the last step (NCHW);"
                " image_u8 = (images*255).round()"})


def main():
    setup(SEED)
    os.makedirs(OUT, exist_ok=True)
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel
    unet = UNet2DConditionModel.from_pretrained(FOLDER, subfolder="unet", torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(FOLDER, subfolder="text_encoder", torch_dtype=torch.float32)
    for p in unet_modules(unet):
        STEM_TO_PATH[kohya_name("unet", p)] = p
    gen = torch.Generator().manual_seed(SEED)
    sd, meta = build_char(unet, text, gen)
    save("char_kohya.safetensors", sd, meta)
    save("char_kohya_ldm.safetensors", ldm_copy(sd, dict(unet.config)), meta)
    sd, meta = build_style(unet, text, gen)
    save("style_peft.safetensors", sd, meta)
    save("style_diffusers_old.safetensors", old_copy(sd), meta)
    save("style_peft_prefixed.safetensors", prefixed_copy(sd), meta)
    sd, meta = build_object(unet, text, gen)
    save("object_kohya.safetensors", sd, meta)
    sd, meta = build_mixed(unet, text, gen)
    save("mixed_kohya.safetensors", sd, meta)
    bad_files(unet, text, gen)
    sd15_mini(gen)
    pipe = goldens()
    pipeline_goldens(pipe)


if __name__ == "__main__":
    main()
