"""Goldens for the non-GEMM kernels (tests/ops/test_kernels_torch.c):
group/layer norm, softmax, scaled dot-product attention, activations,
F.interpolate and diffusers' get_timestep_embedding, on seeded inputs.

Layouts in the files follow loramix, not torch:
  feature maps NHWC [B, H, W, C] (torch's NCHW permuted),
  attention q/k/v/o token-major [B, L, H*D] (torch's [B, H, L, D] permuted).
Inputs are rounded to fp16 and stored as F16 (exact, half the bytes); torch
computes in fp32 on the fp32 values of those inputs; outputs are F32.
Each case stores "<name>.cfg" (int64) with its sizes and flags.

Files (tests/fixtures/ops/):
  kern_norm.safetensors    F.group_norm (+ F.silu), F.layer_norm, softmax
  kern_attn.safetensors    F.scaled_dot_product_attention (is_causal too)
  kern_act.safetensors     F.silu, F.gelu (none/tanh), quick_gelu, GEGLU
  kern_resize.safetensors  F.interpolate nearest/bilinear/bicubic, antialias
  kern_embed.safetensors   diffusers get_timestep_embedding

    /opt/lmxref/bin/python reference/gen_ops.py
"""
import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding

from common import nchw_to_nhwc, save_golden, setup

SEED = 4321


def main():
    setup(seed=SEED)
    g = torch.Generator().manual_seed(SEED)

    def randn(*shape, scale=1.0, offset=0.0):
        return (torch.randn(*shape, generator=g) * scale + offset).half().float()

    def cfg(*v):
        return torch.tensor([int(x) for x in v], dtype=torch.int64)

    # ---- norms ----
    out = {}
    # group norm: (name, B, C, H, W, G, eps, silu, offset)
    for name, B, C, H, W, G, eps, silu, off in [("gn0", 2, 64, 6, 7, 32, 1e-5, 0, 0.0),
                                                 ("gn1", 2, 64, 6, 7, 32, 1e-6, 1, 3.0),
                                                 ("gn2", 1, 33, 3, 5, 3, 1e-5, 1, -1.0)]:
        x = randn(B, C, H, W, offset=off)
        w = randn(C, scale=0.5, offset=1.0)
        b = randn(C, scale=0.5)
        y = F.group_norm(x, G, w, b, eps)
        if silu:
            y = F.silu(y)
        out[f"{name}.x"] = nchw_to_nhwc(x).half()
        out[f"{name}.w"] = w.half()
        out[f"{name}.b"] = b.half()
        out[f"{name}.y"] = nchw_to_nhwc(y)
        out[f"{name}.cfg"] = cfg(B, H * W, C, G, silu)
        out[f"{name}.eps"] = torch.tensor([eps], dtype=torch.float32)
    # layer norm: (name, M, C, affine, offset)
    for name, M, C, affine, off in [("ln0", 4, 768, 1, 0.0), ("ln1", 7, 33, 0, 5.0)]:
        x = randn(M, C, offset=off)
        w = randn(C, scale=0.5, offset=1.0) if affine else None
        b = randn(C, scale=0.5) if affine else None
        y = F.layer_norm(x, (C,), w, b, 1e-5)
        out[f"{name}.x"] = x.half()
        if affine:
            out[f"{name}.w"] = w.half()
            out[f"{name}.b"] = b.half()
        out[f"{name}.y"] = y
        out[f"{name}.cfg"] = cfg(M, C, affine)
    # softmax: (name, M, N, masked)
    for name, M, N, masked in [("sm0", 6, 77, 0), ("sm1", 3, 300, 1)]:
        x = randn(M, N, scale=3.0)
        if masked:
            x[:, 1::3] = float("-inf")
        out[f"{name}.x"] = x  # F32: keeps the -inf entries
        out[f"{name}.y"] = torch.softmax(x, dim=-1)
        out[f"{name}.cfg"] = cfg(M, N, masked)
    save_golden("ops/kern_norm.safetensors", out, SEED)

    # ---- attention ----
    out = {}
    # (name, B, H, Lq, Lk, D, causal)
    for name, B, H, Lq, Lk, D, causal in [("at0", 2, 2, 53, 53, 12, 0),   # self, ragged blocks
                                          ("at1", 1, 2, 30, 77, 16, 0),   # cross (77 keys)
                                          ("at2", 1, 1, 77, 77, 32, 1),   # CLIP causal
                                          ("at3", 1, 1, 24, 24, 128, 0),  # one wide head
                                          ("at4", 1, 3, 20, 11, 5, 1)]:   # causal, Lq > Lk
        q = randn(B, H, Lq, D)
        k = randn(B, H, Lk, D)
        v = randn(B, H, Lk, D)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))

        def tok(t):  # [B, H, L, D] -> [B, L, H*D]
            return t.permute(0, 2, 1, 3).reshape(t.shape[0], t.shape[2], -1).contiguous()

        out[f"{name}.q"] = tok(q).half()
        out[f"{name}.k"] = tok(k).half()
        out[f"{name}.v"] = tok(v).half()
        out[f"{name}.o"] = tok(o)
        out[f"{name}.cfg"] = cfg(B, H, Lq, Lk, D, causal)
    save_golden("ops/kern_attn.safetensors", out, SEED)

    # ---- activations ----
    out = {}
    x = torch.cat([torch.linspace(-10, 10, 801), torch.randn(399, generator=g) * 4,
                   torch.tensor([0.0, -0.0, 30.0, -30.0, 88.0, -88.0, 1e-30, -1e-30])]).float()
    out["act.x"] = x
    out["act.silu"] = F.silu(x)
    out["act.gelu"] = F.gelu(x)
    out["act.gelu_tanh"] = F.gelu(x, approximate="tanh")
    out["act.quick_gelu"] = x * torch.sigmoid(1.702 * x)  # transformers QuickGELUActivation
    M, N = 8, 37
    hg = randn(M, 2 * N, scale=2.0)
    h, gate = hg.chunk(2, dim=-1)  # diffusers GEGLU: [h, gate]
    out["geglu.x"] = hg
    out["geglu.y"] = h * F.gelu(gate)
    out["geglu.cfg"] = cfg(M, N)
    save_golden("ops/kern_act.safetensors", out, SEED)

    # ---- resize (float images, NCHW in torch) ----
    out = {}
    img = torch.rand(1, 3, 19, 23, generator=g)
    out["img.x"] = nchw_to_nhwc(img)
    out["img.cfg"] = cfg(1, 19, 23, 3)
    for mode in ("nearest", "bilinear", "bicubic"):
        for aa in ((0,) if mode == "nearest" else (0, 1)):
            for tag, (Ho, Wo) in (("down", (8, 11)), ("up", (24, 29)), ("mix", (12, 35))):
                kw = {} if mode == "nearest" else {"align_corners": False, "antialias": bool(aa)}
                y = F.interpolate(img, size=(Ho, Wo), mode=mode, **kw)
                key = f"{mode}{'_aa' if aa else ''}_{tag}"
                out[f"{key}.y"] = nchw_to_nhwc(y)
                out[f"{key}.cfg"] = cfg(Ho, Wo, aa)
    # the x2 of the UNet / VAE upsamplers
    lat = randn(1, 5, 4, 6)
    out["up2.x"] = nchw_to_nhwc(lat).half()
    out["up2.y"] = nchw_to_nhwc(F.interpolate(lat, scale_factor=2.0, mode="nearest"))
    out["up2.cfg"] = cfg(1, 4, 6, 5)
    save_golden("ops/kern_resize.safetensors", out, SEED)

    # ---- timestep embedding ----
    out = {}
    t_int = torch.tensor([999, 981, 961, 500, 37, 1, 0], dtype=torch.int64)
    t_flt = torch.tensor([999.0, 500.5, 12.345, 0.25], dtype=torch.float32)
    # (name, t, dim, flip, shift)
    for name, t, dim, flip, shift in [("te0", t_int, 320, True, 0), ("te1", t_int, 320, True, 1),
                                      ("te2", t_flt, 320, True, 0), ("te3", t_flt, 320, True, 1),
                                      ("te4", t_int, 64, False, 1)]:
        e = get_timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        out[f"{name}.t"] = t.float().clone()  # what the UNet sees: t as fp32
        out[f"{name}.y"] = e
        out[f"{name}.cfg"] = cfg(t.shape[0], dim, int(flip), shift)
        # the fp32 frequencies exp(e_j) torch computed inside (same steps)
        half = dim // 2
        ex = -math.log(10000) * torch.arange(0, half, dtype=torch.float32)
        out[f"{name}.freq"] = torch.exp(ex / (half - shift))
    save_golden("ops/kern_embed.safetensors", out, SEED)


if __name__ == "__main__":
    main()
