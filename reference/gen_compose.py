#!/usr/bin/env python3
"""gen_compose.py - multi-LoRA composition on diffusers + peft, written from
docs/methods.md (not from the papers' repositories), and its goldens.

Writes under tests/fixtures/compose/:

  character_1.safetensors, clothing_1.safetensors, style_1.safetensors
      tiny kohya LoRAs for tests/fixtures/models/tiny-sd (seeded random weights, diffusers
      UNet dialect, uniform rank/alpha per file so every loader scales them alpha/rank):
        character_1  fp16, rank 4, alpha 2: UNet attn1/attn2 q/k/v/out, ff, proj_in/out,
                     resnet conv1 (3x3); TE q/k/v/out/fc1/fc2 of both layers
        clothing_1   fp32, rank 4, alpha 4: UNet attn2 q/k/v/out, resnet conv2 (3x3),
                     conv_shortcut; TE q/v/out/fc1 (note: without an out_proj module diffusers
                     0.32.2 would drop the TE self-attention modules of a kohya file that also
                     has mlp modules: its format sniffing sees "lora_linear_layer" first and
                     leaves the "to_q_lora" keys unconverted)
        style_1      fp32, rank 2, no alpha (scale 1): UNet attn1 + attn2 q/k/v/out, ff;
                     TE out_proj, fc2
      Their ids, categories and triggers are the reality testbed's (docs/testbed.md §1).

  ablation.json
      PAW ablated prompts P\\i and PTW trigger strings S_i (docs/methods.md §7.2-7.3) computed with
      Python's `re` exactly as §7.2 for every composition set of both testbed subsets
      (480 sets, docs/testbed.md §5), plus synthetic strings that probe the regex semantics
      (case folding, word boundaries, Unicode, whitespace, commas).

  golden_weights.safetensors
      PAW/PTW on the tiny model's text encoder (transformers CLIPTextModel, fp32): metadata
      "cases" (JSON) with, per case, the prompt, LoRAs (id, category, triggers), weighting,
      pooling (D7), TE state (D5: none, or the generation's TE LoRAs at lambda), the texts,
      raw scores, floored a_i and weights (repr doubles). Tensors "<case>.e" [1+N, hidden]:
      the pooled vectors e(P), e(text_i).

  golden_methods.safetensors
      every method (merge, switch, composite, w-switch, w-composite) for N = 2 and N = 3 with
      a manual denoising loop (docs/methods.md §3): DPMSolverMultistepScheduler built from the
      model's scheduler_config.json with algorithm_type "dpmsolver++" (docs/testbed.md §2), 64x64,
      CFG, fixed seed, lambda = 0.8 as cross_attention_kwargs={"scale"} (UNet) and
      encode_prompt(lora_scale=) (TE), LoRAs via load_lora_weights(adapter_name=) and
      set_adapters. "<case>.latents" [1,4,8,8] final latents, "<case>.image_u8" [1,64,64,3] (for the
      cases of WITH_IMAGES);
      metadata "cases" (JSON): settings, LoRAs, the TE adapter set, weights, blocks, the
      per-step UNet LoRA string.

Combination arithmetic (fp32, this order; src/compose/plan.c does the same):
  CFG(u, c)     d = c - u; d = g * d; eps = u + d
  composite     su = u_0 + u_1 + ... (left to right); mu = su / N; same for c; CFG(mu, mc)
  w-composite   acc = 0; acc = acc + fl(w_i) * CFG(u_i, c_i) for i in order;
                eps = acc / fl(max(sum w, 1e-6))

Run:  OMP_NUM_THREADS=2 /opt/lmxref/bin/python reference/gen_compose.py
"""
import itertools
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import common  # noqa: E402
from common import FIXTURES, save_golden, setup  # noqa: E402

SEED = 2402
OUT = os.path.join(FIXTURES, "compose")
FOLDER = os.path.join(FIXTURES, "models", "tiny-sd")
SPEC = os.path.join(common.ROOT, "data", "testbed")  # the testbed's LoRA lists (docs/testbed.md §1)
LAM = 0.8

REALITY_BASE = ("RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, "
                "half-length portrait from knees up")
ANIME_BASE = "masterpiece, best quality"
NEGATIVE = "cartoon, drawing, blurry, low quality"

LORAS = {  # id -> (category, triggers), the reality testbed's
    "character_1": ("character", ["iu1", "long straight black hair", "hazel eyes", "diamond stud earrings"]),
    "clothing_1": ("clothing", ["mahalaiuniform", "white shirt short sleeves", "black pencil skirt"]),
    "style_1": ("style", ["film overlay", "film grain"]),
}


# ---- the method definitions (docs/methods.md §5, §7, §8) -----------------------------------

def ablate(prompt, triggers):
    """P \\ i, docs/methods.md §7.2, literally."""
    p = prompt
    for t in triggers:
        p = re.sub(r"\b" + re.escape(t) + r"\b", "", p, flags=re.IGNORECASE)
    p = re.sub(r"\s*,\s*,\s*", ", ", p)
    p = re.sub(r"\s+", " ", p).strip()
    p = p.strip(",").strip()
    return p


def trigger_string(triggers):
    return ", ".join(t for t in triggers if t != "")


def switch_active(k, n, tau, reference):
    if not reference:
        return (k % (n * tau)) // tau
    return 0 if k <= tau else ((k - 1) // tau) % n


def wswitch_sched(w, tau, T, tail, char):
    m = max(w)
    b = [max(1, int(np.round((wi / m) * tau))) for wi in w]
    sched = []
    j = 0
    while len(sched) < T:
        sched += [j % len(w)] * b[j % len(w)]
        j += 1
    sched = sched[:T]
    for k in range(T - tail, T):
        sched[k] = char
    return b, sched


def normalise(a):
    s = sum(a)
    return [x / s for x in a] if s > 0 else list(a)


# ---- LoRA fixtures ------------------------------------------------------------------------

def unet_modules(unet):
    return {n: m for n, m in unet.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}


def te_modules(text):
    return {n: m for n, m in text.named_modules() if isinstance(m, torch.nn.Linear) and ".encoder.layers." in n}


def make_pair(mod, r, gen, up_std):
    if isinstance(mod, torch.nn.Linear):
        down = torch.randn(r, mod.in_features, generator=gen) / np.sqrt(mod.in_features)
        up = torch.randn(mod.out_features, r, generator=gen) * (up_std / np.sqrt(r))
    else:
        kh, kw = mod.kernel_size
        down = torch.randn(r, mod.in_channels, kh, kw, generator=gen) / np.sqrt(mod.in_channels * kh * kw)
        up = torch.randn(mod.out_channels, r, 1, 1, generator=gen) * (up_std / np.sqrt(r))
    return down, up


def kohya(comp, path):
    return ("lora_unet_" if comp == "unet" else "lora_te_") + path.replace(".", "_")


def build_lora(unet, text, gen, unet_pick, te_pick, rank, alpha, dtype, up_std):
    sd = {}
    for comp, mods, pick in (("unet", unet_modules(unet), unet_pick), ("te", te_modules(text), te_pick)):
        for p, m in mods.items():
            if not pick(p):
                continue
            d, u = make_pair(m, rank, gen, up_std)
            k = kohya(comp, p)
            sd[k + ".lora_down.weight"] = d.to(dtype).contiguous()
            sd[k + ".lora_up.weight"] = u.to(dtype).contiguous()
            if alpha is not None:
                sd[k + ".alpha"] = torch.tensor(float(alpha)).to(dtype)
    return sd


def make_loras(pipe):
    gen = torch.Generator().manual_seed(SEED)
    attn = ("to_q", "to_k", "to_v", "to_out.0")
    specs = {
        "character_1": dict(
            unet_pick=lambda p: (("transformer_blocks" in p) or p.endswith(("proj_in", "proj_out"))
                                 or p.endswith("resnets.0.conv1")),
            te_pick=lambda p: True, rank=4, alpha=2, dtype=torch.float16, up_std=0.5),
        "clothing_1": dict(
            unet_pick=lambda p: (("attn2" in p and p.endswith(attn)) or p.endswith(".conv2")
                                 or p.endswith("conv_shortcut")),
            te_pick=lambda p: p.endswith(("q_proj", "v_proj", "out_proj", "fc1")), rank=4, alpha=4,
            dtype=torch.float32, up_std=0.4),
        "style_1": dict(
            unet_pick=lambda p: ("attn" in p and p.endswith(attn)) or ".ff." in p,
            te_pick=lambda p: p.endswith(("out_proj", "fc2")), rank=2, alpha=None,
            dtype=torch.float32, up_std=0.5),
    }
    os.makedirs(OUT, exist_ok=True)
    for lid, s in specs.items():
        sd = build_lora(pipe.unet, pipe.text_encoder, gen, **s)
        cat, trig = LORAS[lid]
        meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(s["rank"]),
                "ss_network_alpha": str(s["alpha"] if s["alpha"] is not None else s["rank"]),
                "ss_output_name": lid, "loramix.category": cat, "loramix.triggers": json.dumps(trig)}
        path = os.path.join(OUT, lid + ".safetensors")
        save_file(sd, path + ".tmp", metadata=meta)
        os.replace(path + ".tmp", path)
        print(f"wrote tests/fixtures/compose/{lid}.safetensors ({os.path.getsize(path)/1024:.1f} KiB, "
              f"{len(sd)} tensors)")


# ---- ablation vectors ------------------------------------------------------------------------

def testbed_sets(info):
    cats = list(info.keys())
    others = [c for c in cats if c != "character"]
    for n in range(2, 6):
        for types in itertools.combinations(others, n - 1):
            cur = ["character"] + list(types)
            for combo in itertools.product(*[info[c] for c in cur]):
                yield combo


SYNTHETIC = [
    # (prompt, triggers) probing sre semantics
    ("A Photo of IU1, Long Straight Black Hair", ["iu1", "long straight black hair"]),
    ("iu1iu1 iu1 xiu1 iu1_ iu1-x", ["iu1"]),
    ("toast, toast in mouth, toasted bread", ["toast", "toast in mouth"]),
    ("toast in mouth, toast", ["toast in mouth", "toast"]),
    ("a  , ,  ,b", []),
    (" ,, a,,b , ,, ", []),
    ("\t a\n\nb  c \u3000 d\u00a0e ", []),
    ("café latte, caf latte, CAFÉ", ["caf", "café"]),
    ("Straße, STRASSE, straße", ["straße"]),
    ("KELVIN \u212a, k, K", ["k"]),
    ("ſs long s, S", ["s"]),
    ("İstanbul, istanbul, ıstanbul", ["istanbul"]),
    ("(masterpiece), masterpiece, [masterpiece]", ["(masterpiece)"]),
    ("hand-drawn style, hand drawn style", ["hand-drawn style"]),
    ("a.b, a*b, a+b", ["a.b", "a+b"]),
    ("lib_bg, lib bg, lib_bg2", ["lib_bg"]),
    ("x, , , y", ["z"]),
    (", , leading and trailing, ,", []),
    ("abc", ["abc"]),
    ("abcd, e", ["e"]),
    ("", ["x"]),
    ("σοφία ΣΟΦΊΑ", ["σοφία"]),
    ("日本語のテキスト, 日本", ["日本"]),
    ("x 2nd, 2, ２", ["2"]),
    ("word,word , word", ["word"]),
    ("a,,,,b", []),
    ("a , , , , b", []),
    ("empty trigger stays", [""]),
    ("µ micro, μ mu", ["μ"]),
]


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def ablation_vectors():
    """Every set's P\\i as FNV-1a 64 hashes (full text for every 16th set)."""
    subsets, full = {}, {}
    for sub, base in (("reality", REALITY_BASE), ("anime", ANIME_BASE)):
        with open(os.path.join(SPEC, f"{sub}_lora_info.json")) as f:
            info = json.load(f)
        loras = {l["id"]: l["trigger"] for c in info.values() for l in c}
        sets = []
        for j, combo in enumerate(testbed_sets(info)):
            ids = [l["id"] for l in combo]
            P = base + ", " + ", ".join(t for l in combo for t in l["trigger"])
            abl = [ablate(P, l["trigger"]) for l in combo]
            full[(sub,) + tuple(ids)] = abl
            e = {"ids": ids, "fnv": [fnv1a64(a) for a in abl]}
            if j % 16 == 0:
                e["ablated"] = abl
            sets.append(e)
        subsets[sub] = {"base": base, "loras": loras, "sets": sets}
    syn = [{"prompt": p, "triggers": t, "ablated": ablate(p, t), "ptw": trigger_string(t),
            "len": len(ablate(p, t))} for p, t in SYNTHETIC]
    out = {"format_version": common.FORMAT_VERSION, "command": common.command(),
           "packages": json.loads(common.packages()), "hash": "fnv1a64 of the UTF-8 bytes",
           "subsets": subsets, "synthetic": syn}
    path = os.path.join(OUT, "ablation.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    os.replace(path + ".tmp", path)
    n = sum(len(s["sets"]) for s in subsets.values())
    print(f"wrote tests/fixtures/compose/ablation.json ({os.path.getsize(path)/1024:.1f} KiB, {n} sets, "
          f"{len(syn)} synthetic)")
    r = {k[1:]: v for k, v in full.items() if k[0] == "reality"}
    a = {k[1:]: v for k, v in full.items() if k[0] == "anime"}
    # the spec's vectors (docs/methods.md §10.4) hold
    B = REALITY_BASE
    assert r[("character_1", "clothing_1")][0] == B + ", , , mahalaiuniform, white shirt short sleeves, black pencil skirt"
    assert r[("character_3", "style_2")][1] == B + ", th3r0ck with no hair, muscular male, serious look on his face"
    assert a[("character_1", "clothing_1", "style_1", "background_1", "object_2")][4].endswith("bamboo, in mouth")


# ---- prompt-aware weights ----------------------------------------------------------------------

def embed(tok, te, texts, pool):
    """e(s) for each text, one encoder call per text (as the reference code)."""
    out = []
    for s in texts:
        enc = tok(s, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt")
        with torch.no_grad():
            h = te(enc.input_ids)[0]  # [1, 77, hidden] last_hidden_state
        if pool == "mean77":
            e = h.mean(dim=1)
        elif pool == "masked_mean":
            m = enc.attention_mask.unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(dim=1) / m.sum(dim=1)
        else:  # eos: the first EOS, CLIP's pooled position
            e = h[torch.arange(1), enc.input_ids.argmax(dim=-1)]
        out.append(e)
    return torch.cat(out)


def prompt_weights(tok, te, prompt, loras, kind, pool):
    """docs/methods.md §7: returns texts, scores (before floor), a, w, edges, e."""
    texts, edges = [], []
    for lid, (cat, trig) in loras:
        if kind == "paw":
            s = ablate(prompt, trig)
            edges.append("no_triggers" if len(trig) == 0 else "short" if len(s) < 5 else "")
        else:
            s = trigger_string(trig)
            edges.append("no_triggers" if s == "" else "")
        texts.append(s)
    e = embed(tok, te, [prompt] + texts, pool)
    scores, a = [], []
    for i, edge in enumerate(edges):
        if kind == "paw":
            if edge == "no_triggers":
                sc = 0.1
                ai = 0.1
            elif edge == "short":
                sc = 2.0
                ai = max(2.0, 0.05)
            else:
                cos = F.cosine_similarity(e[0:1], e[i + 1:i + 2]).item()
                sc = 1.0 - cos
                ai = max(sc, 0.05)
        else:
            sc = 0.0 if edge == "no_triggers" else F.cosine_similarity(e[0:1], e[i + 1:i + 2]).item()
            ai = sc
        scores.append(sc)
        a.append(ai)
    return texts, scores, a, normalise(a), edges, e


def lset(*ids, triggers=None):
    out = []
    for lid in ids:
        cat, trig = LORAS.get(lid, (lid.split("_")[0], []))
        if triggers and lid in triggers:
            trig = triggers[lid]
        out.append((lid, (cat, trig)))
    return out


def testbed_prompt(base, loras):
    return base + ", " + ", ".join(t for _, (_, trig) in loras for t in trig)


def tb_lookup(sub):
    with open(os.path.join(SPEC, f"{sub}_lora_info.json")) as f:
        info = json.load(f)
    return {l["id"]: (c, l["trigger"]) for c, ls in info.items() for l in ls}


def weight_cases():
    R, A = tb_lookup("reality"), tb_lookup("anime")
    rs = lambda *ids: [(i, R[i]) for i in ids]  # noqa: E731
    cases = []
    for kind in ("paw", "ptw"):
        for name, loras, base in (
                ("r2", rs("character_1", "clothing_1"), REALITY_BASE),
                ("r3", rs("character_1", "clothing_1", "style_1"), REALITY_BASE),
                ("r5", rs("character_1", "clothing_1", "style_1", "background_1", "object_1"), REALITY_BASE),
                ("r5long", rs("character_3", "clothing_2", "style_1", "background_1", "object_2"), REALITY_BASE),
                ("a5toast", [(i, A[i]) for i in ("character_1", "clothing_1", "style_1", "background_1",
                                                 "object_2")], ANIME_BASE)):
            cases.append(dict(name=f"{kind}_{name}", kind=kind, pool="mean77", te="none",
                              prompt=testbed_prompt(base, loras), loras=loras))
    # pooling variants (D7)
    for pool in ("masked_mean", "eos"):
        loras = rs("character_1", "clothing_1", "style_1")
        for kind in ("paw", "ptw"):
            cases.append(dict(name=f"{kind}_r3_{pool}", kind=kind, pool=pool, te="none",
                              prompt=testbed_prompt(REALITY_BASE, loras), loras=loras))
    # edges: a LoRA without triggers; an ablated prompt under 5 characters; a set whose
    # scores are all under the floor is whatever the tiny model gives (logged)
    e1 = [("character_1", R["character_1"]), ("object_9", ("object", []))]
    for kind in ("paw", "ptw"):
        cases.append(dict(name=f"{kind}_notrig", kind=kind, pool="mean77", te="none",
                          prompt=testbed_prompt(REALITY_BASE, e1), loras=e1))
    e2 = [("character_1", ("character", ["iu1"])), ("style_2", ("style", ["bright lighting"]))]
    cases.append(dict(name="paw_short", kind="paw", pool="mean77", te="none",
                      prompt="iu1, bright lighting", loras=e2))
    # D5 "generation": the TE LoRAs of the method's prompt encoding, at lambda
    loras = [(i, LORAS[i]) for i in ("character_1", "clothing_1", "style_1")]
    prompt = testbed_prompt(REALITY_BASE, loras)
    cases.append(dict(name="paw_r3_tegen", kind="paw", pool="mean77", te="first", prompt=prompt, loras=loras))
    cases.append(dict(name="ptw_r3_tegen", kind="ptw", pool="mean77", te="all", prompt=prompt, loras=loras))
    return cases


def weights_goldens(pipe):
    from transformers import CLIPTextModel, CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(os.path.join(FOLDER, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(FOLDER, "text_encoder"), torch_dtype=torch.float32).eval()
    tensors, meta = {}, []
    for c in weight_cases():
        if c["te"] == "none":
            texts, sc, a, w, edges, e = prompt_weights(tok, te, c["prompt"], c["loras"], c["kind"], c["pool"])
        else:
            # the pipeline's text encoder with the LoRA adapters of the generation at lambda
            ids = [lid for lid, _ in c["loras"]]
            names = ids[:1] if c["te"] == "first" else ids
            pipe.enable_lora()
            pipe.set_adapters(names)
            from diffusers.utils import scale_lora_layers, unscale_lora_layers
            scale_lora_layers(pipe.text_encoder, LAM)
            texts, sc, a, w, edges, e = prompt_weights(pipe.tokenizer, pipe.text_encoder, c["prompt"],
                                                       c["loras"], c["kind"], c["pool"])
            unscale_lora_layers(pipe.text_encoder, LAM)
            pipe.disable_lora()
        tensors[c["name"] + ".e"] = e
        meta.append(dict(name=c["name"], weighting=c["kind"], pool=c["pool"], te=c["te"], prompt=c["prompt"],
                         loras=[dict(id=lid, category=cat, triggers=trig) for lid, (cat, trig) in c["loras"]],
                         texts=texts, scores=sc, a=a, weights=w, edges=edges))
        print(f"  {c['name']:18s} scores {' '.join(f'{x:.5f}' for x in sc)}  w {' '.join(f'{x:.4f}' for x in w)}")
    save_golden("compose/golden_weights.safetensors", tensors, SEED, extra_meta={
        "cases": json.dumps(meta), "lora_scale": str(LAM),
        "call": "CLIPTextModel(ids)[0] per text; pooled; F.cosine_similarity; docs/methods.md §7"})


# ---- the five methods ---------------------------------------------------------------------------

def load_pipe():
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_scheduler():
    """docs/testbed.md §2: the checkpoint's JSON with algorithm_type = dpmsolver++."""
    from diffusers import DPMSolverMultistepScheduler
    with open(os.path.join(FOLDER, "scheduler", "scheduler_config.json")) as f:
        cfg = json.load(f)
    cfg["algorithm_type"] = "dpmsolver++"
    return DPMSolverMultistepScheduler.from_config(cfg)


def plan_of(method, ids, weights, tau, tail, reference, T):
    """The per-step UNet LoRA indices (list per step) and the TE adapter set."""
    n = len(ids)
    if method in ("switch", "w-switch"):
        te = [0]
    else:
        te = list(range(n))
    if method == "merge":
        return [list(range(n))] * T, te, None, None
    if method in ("composite", "w-composite"):
        return None, te, None, None
    if method == "switch":
        act = [switch_active(k, n, tau, reference) for k in range(T)]
        return [[a] for a in act], te, None, None
    char = next(i for i, lid in enumerate(ids) if LORAS[lid][0] == "character")
    b, sched = wswitch_sched(weights, tau, T, tail, char)
    act = [sched[k - 1 if (reference and k > 0) else k] for k in range(T)]
    return [[a] for a in act], te, b, sched


def generate(pipe, case):
    s = case
    ids = s["ids"]
    n = len(ids)
    T, g = s["steps"], s["guidance"]
    sched = make_scheduler()
    sched.set_timesteps(T)
    steps, te, blocks, clean = plan_of(s["method"], ids, s.get("w"), s["tau"], s["tail"], s["reference"], T)
    with torch.no_grad():
        pipe.enable_lora()
        pipe.set_adapters([ids[i] for i in te])
        e_pos, e_neg = pipe.encode_prompt(s["prompt"], "cpu", 1, True, s["negative"], lora_scale=LAM)
        ctx = torch.cat([e_neg, e_pos])
        x = torch.randn((1, 4, s["height"] // 8, s["width"] // 8), generator=torch.manual_seed(s["seed"]))
        x = x * sched.init_noise_sigma

        def eps_of(names, xin, t):
            pipe.set_adapters(names)
            out = pipe.unet(xin, t, encoder_hidden_states=ctx, cross_attention_kwargs={"scale": LAM}).sample
            return out.chunk(2)

        def cfg(u, c):
            return u + g * (c - u)

        for k, t in enumerate(sched.timesteps):
            xin = sched.scale_model_input(torch.cat([x, x]), t)
            if s["method"] in ("merge", "switch", "w-switch"):
                u, c = eps_of([ids[i] for i in steps[k]], xin, t)
                eps = cfg(u, c)
            elif s["method"] == "composite":
                us, cs = zip(*[eps_of([lid], xin, t) for lid in ids])
                su, sc = us[0], cs[0]
                for i in range(1, n):
                    su = su + us[i]
                    sc = sc + cs[i]
                eps = cfg(su / n, sc / n)
            else:  # w-composite
                acc = torch.zeros_like(x)
                for i, lid in enumerate(ids):
                    u, c = eps_of([lid], xin, t)
                    acc = acc + s["w"][i] * cfg(u, c)
                eps = acc / max(sum(s["w"]), 1e-6)
            x = sched.step(eps, t, x).prev_sample
        img = pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample
        img = pipe.image_processor.postprocess(img, output_type="np")
        pipe.disable_lora()
    u8 = (img * 255).round().astype("uint8")
    sym = "0123456789"
    act = "".join(sym[st[0]] for st in steps) if steps and s["method"] != "merge" else ""
    return x, u8, te, blocks, act, clean


# uint8 images are stored for these cases only (49 KiB each as int32); latents for all
WITH_IMAGES = ("n2_merge", "n3_switch", "n3_composite", "n3_wswitch_manual", "n3_wcomposite")


def method_goldens(pipe):
    from transformers import CLIPTokenizer, CLIPTextModel
    tok = CLIPTokenizer.from_pretrained(os.path.join(FOLDER, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(FOLDER, "text_encoder"), torch_dtype=torch.float32).eval()
    base = dict(negative=NEGATIVE, steps=10, guidance=7.0, seed=42, width=64, height=64, tau=2, tail=2,
                reference=False)
    cases = []
    for sid, ids in (("n2", ["character_1", "clothing_1"]), ("n3", ["character_1", "clothing_1", "style_1"])):
        loras = [(i, LORAS[i]) for i in ids]
        prompt = testbed_prompt(REALITY_BASE, loras)
        paw = prompt_weights(tok, te, prompt, loras, "paw", "mean77")
        ptw = prompt_weights(tok, te, prompt, loras, "ptw", "mean77")
        common_ = dict(base, ids=ids, prompt=prompt, seed=42 if sid == "n2" else 43)
        cases += [
            dict(common_, name=f"{sid}_merge", method="merge"),
            dict(common_, name=f"{sid}_switch", method="switch"),
            dict(common_, name=f"{sid}_switch_ref", method="switch", reference=True),
            dict(common_, name=f"{sid}_composite", method="composite"),
            dict(common_, name=f"{sid}_wswitch", method="w-switch", weighting="paw", w=paw[3], scores=paw[1]),
            dict(common_, name=f"{sid}_wswitch_ref", method="w-switch", weighting="paw", w=paw[3],
                 scores=paw[1], reference=True),
            dict(common_, name=f"{sid}_wcomposite", method="w-composite", weighting="ptw", w=ptw[3],
                 scores=ptw[1]),
        ]
        if sid == "n3":
            man = [0.6, 0.15, 0.25]
            cases.append(dict(common_, name="n3_wswitch_manual", method="w-switch", weighting="manual",
                              manual=man, w=normalise(man), scores=man, tau=4, tail=3, steps=12))
            cases.append(dict(common_, name="n3_wcomposite_manual", method="w-composite", weighting="manual",
                              manual=man, w=normalise(man), scores=man))
    # N = 1: every method is the single LoRA
    one = dict(base, ids=["style_1"], prompt=testbed_prompt(REALITY_BASE, [("style_1", LORAS["style_1"])]),
               seed=44, name="n1_merge", method="merge")
    cases.append(one)
    tensors, meta = {}, []
    for c in cases:
        x, u8, te_set, blocks, act, clean = generate(pipe, c)
        tensors[c["name"] + ".latents"] = x
        if c["name"] in WITH_IMAGES:
            tensors[c["name"] + ".image_u8"] = torch.from_numpy(u8.astype(np.int32))
        m = {k: v for k, v in c.items()}
        m.update(te_loras=te_set, blocks=blocks, schedule=act, clean_schedule=clean,
                 categories=[LORAS[i][0] for i in c["ids"]], triggers=[LORAS[i][1] for i in c["ids"]])
        meta.append(m)
        print(f"  {c['name']:22s} |x| {x.abs().max():.3f} image mean {u8.mean():6.1f} schedule {act or '-'}"
              + (f" w {' '.join(f'{v:.4f}' for v in c['w'])}" if "w" in c else ""))
    # sanity: the methods differ from one another and LoRAs change the output clearly
    lat = {k[:-len('.latents')]: v for k, v in tensors.items() if k.endswith(".latents")}
    for a_, b_ in (("n3_merge", "n3_composite"), ("n3_switch", "n3_switch_ref"), ("n3_composite", "n3_wcomposite"),
                   ("n3_switch", "n3_wswitch")):
        d = (lat[a_] - lat[b_]).abs().max().item()
        print(f"  |{a_} - {b_}| = {d:.4f}")
    save_golden("compose/golden_methods.safetensors", tensors, SEED, extra_meta={
        "cases": json.dumps(meta), "lora_scale": str(LAM),
        "loras": json.dumps({k: dict(category=v[0], triggers=v[1], file=f"tests/fixtures/compose/{k}.safetensors")
                             for k, v in LORAS.items()})})


def main():
    import time
    setup(seed=0)
    t0 = time.time()
    pipe = load_pipe()
    make_loras(pipe)
    for lid in LORAS:
        pipe.load_lora_weights(os.path.join(OUT, lid + ".safetensors"), adapter_name=lid)
    pipe.disable_lora()
    ablation_vectors()
    t1 = time.time()
    weights_goldens(pipe)
    t2 = time.time()
    method_goldens(pipe)
    print(f"times: loras+ablation {t1 - t0:.1f} s, weights {t2 - t1:.1f} s, methods {time.time() - t2:.1f} s")


if __name__ == "__main__":
    main()
