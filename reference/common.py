"""Shared helpers for the golden-data generators in reference/.

Every golden file is a safetensors file whose __metadata__ records:
  format_version  bump when the layout of a golden file changes
  seed            the seed the generator used
  packages        versions of torch/diffusers/transformers/peft/numpy
  command         the exact command that regenerates the file
so a failing C test can say how its reference was made.
"""
import json
import os
import platform
import random
import sys

import numpy as np
import torch
from safetensors.torch import save_file

FORMAT_VERSION = "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def setup(seed=0, threads=2):
    """Deterministic torch on the CPU, fp32, fixed thread count."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    assert not _has("ftfy"), "uninstall ftfy: the goldens use transformers' BasicTokenizer path"


def _has(mod):
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def packages():
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for mod in ("diffusers", "transformers", "peft", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return json.dumps(out, sort_keys=True)


def command():
    rel = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    return " ".join(["python3", rel] + sys.argv[1:])


def save_golden(path, tensors, seed, extra_meta=None):
    """Write tensors (name -> torch tensor or numpy array) as a golden file.
    Tensors are made contiguous; float64 becomes float32, bool/int become int64."""
    out = {}
    for k, v in tensors.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
        if not torch.is_tensor(v):
            v = torch.tensor(v)
        v = v.detach().cpu()
        if v.dtype == torch.float64:
            v = v.float()
        elif v.dtype in (torch.bool, torch.int8, torch.int16, torch.uint8):
            v = v.long()
        out[k] = v.contiguous()
    meta = {"format_version": FORMAT_VERSION, "seed": str(seed), "packages": packages(),
            "command": command()}
    if extra_meta:
        meta.update({k: str(v) for k, v in extra_meta.items()})
    full = os.path.join(FIXTURES, path) if not os.path.isabs(path) else path
    os.makedirs(os.path.dirname(full), exist_ok=True)
    tmp = full + ".tmp"
    save_file(out, tmp, metadata=meta)
    os.replace(tmp, full)
    size = os.path.getsize(full)
    print(f"wrote {os.path.relpath(full, ROOT)} ({size/1024:.1f} KiB, {len(out)} tensors)")
    return full


def nchw_to_nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous()
