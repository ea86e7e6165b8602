"""Goldens for the gemm-family kernels (tests/ops/test_gemm_torch.c):
torch.nn.functional.linear, torch.matmul and torch.nn.functional.conv2d on
seeded inputs, a handful of shapes with odd sizes.

Layouts in the file follow loramix, not torch:
  linear  x [M, K], w [N, K] (torch), b [N], y [M, N]
  matmul  a [batch, M, K], b [batch, K, N] (or [batch, N, K] when trans_b),
          c = a @ b (@ b^T)
  conv    x NHWC [B, H, W, Cin] (torch's NCHW permuted), w [Cout, Cin, kh, kw]
          (torch), b [Cout], y NHWC [B, Ho, Wo, Cout]
Each case also stores "<name>.cfg" (int64) with its sizes.

    /opt/lmxref/bin/python reference/gen_ops_gemm.py
"""
import torch
import torch.nn.functional as F

from common import nchw_to_nhwc, save_golden, setup

SEED = 1234


def main():
    setup(seed=SEED)
    g = torch.Generator().manual_seed(SEED)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    out = {}

    # linear: (name, M, K, N, bias)
    for name, M, K, N, bias in [("lin0", 5, 33, 17, True), ("lin1", 77, 64, 48, False),
                                ("lin2", 1, 320, 40, True), ("lin3", 3, 7, 5, True)]:
        x = randn(M, K)
        w = randn(N, K, scale=K ** -0.5)
        b = randn(N, scale=0.5) if bias else None
        y = F.linear(x, w, b)
        out[f"{name}.x"] = x
        out[f"{name}.w"] = w
        if b is not None:
            out[f"{name}.b"] = b
        out[f"{name}.y"] = y
        out[f"{name}.cfg"] = torch.tensor([M, K, N, int(bias)], dtype=torch.int64)

    # matmul: (name, batch, M, N, K, trans_b, alpha)
    for name, batch, M, N, K, tb, alpha in [("mm0", 3, 5, 7, 9, 0, 1.0),
                                            ("mm1", 4, 37, 77, 8, 1, 8 ** -0.5),
                                            ("mm2", 1, 64, 40, 77, 0, 1.0)]:
        a = randn(batch, M, K)
        b = randn(batch, N, K) if tb else randn(batch, K, N)
        c = torch.matmul(a, b.transpose(-1, -2) if tb else b) * alpha
        out[f"{name}.a"] = a
        out[f"{name}.b"] = b
        out[f"{name}.c"] = c
        out[f"{name}.cfg"] = torch.tensor([batch, M, N, K, tb], dtype=torch.int64)
        out[f"{name}.alpha"] = torch.tensor([alpha], dtype=torch.float32)

    # conv2d: (name, B, Cin, H, W, Cout, kh, kw, stride, pad, bias)
    for name, B, Cin, H, W, Cout, kh, kw, s, p, bias in [
            ("conv0", 2, 5, 9, 7, 6, 3, 3, 1, 1, True),
            ("conv1", 1, 3, 11, 10, 4, 3, 3, 2, 1, True),
            ("conv2", 1, 33, 5, 6, 8, 1, 1, 1, 0, True),
            ("conv3", 1, 4, 10, 9, 5, 5, 5, 2, 2, False),
            ("conv4", 1, 16, 8, 8, 16, 3, 3, 2, 0, True)]:
        x = randn(B, Cin, H, W)
        w = randn(Cout, Cin, kh, kw, scale=(Cin * kh * kw) ** -0.5)
        b = randn(Cout, scale=0.5) if bias else None
        y = F.conv2d(x, w, b, stride=s, padding=p)
        out[f"{name}.x"] = nchw_to_nhwc(x)
        out[f"{name}.w"] = w
        if b is not None:
            out[f"{name}.b"] = b
        out[f"{name}.y"] = nchw_to_nhwc(y)
        out[f"{name}.cfg"] = torch.tensor([B, Cin, H, W, Cout, kh, kw, s, p, int(bias)],
                                          dtype=torch.int64)

    save_golden("ops/gemm_torch.safetensors", out, seed=SEED)


if __name__ == "__main__":
    main()
