"""Fixtures for the io tests (tests/unit/test_safetensors.c): a small
safetensors file written by the reference library (safetensors.torch), with
every dtype loramix reads, a scalar, a zero-size tensor and UTF-8 metadata,
so the C reader is checked against the reference writer's layout.

    /opt/lmxref/bin/python reference/gen_io.py
"""
import torch

from common import save_golden, setup


def main():
    setup(seed=0)
    tensors = {
        "f32": (torch.arange(6, dtype=torch.float32) / 4 - 0.5).reshape(2, 3),
        "f16": torch.tensor([1.0, -2.0, 0.5, 65504.0, 2.0 ** -24], dtype=torch.float16),
        "bf16": torch.tensor([[1.5], [-3.25], [2.0 ** 100]], dtype=torch.bfloat16),
        "i32": torch.tensor(-7, dtype=torch.int32),
        "i64": torch.tensor([0, -1, 2 ** 40, -(2 ** 62)], dtype=torch.int64),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }
    save_golden("io/ref_small.safetensors", tensors, seed=0, extra_meta={"note": "h\u00e9llo \u2713"})


if __name__ == "__main__":
    main()
