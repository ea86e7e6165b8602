"""PSNR of one 8-bit image against another (the fp32 reference), and the
share of saturated pixels (0 or 255) in the reference, which inflate PSNR.

  /opt/lmxref/bin/python bench/psnr.py REF.png OTHER.png
"""
import sys

import numpy as np
from PIL import Image

a = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.float64)
b = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=np.float64)
mse = np.mean((a - b) ** 2)
psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
sat = np.mean((a == 0) | (a == 255))
print(f"PSNR {psnr:.2f} dB, max |diff| {np.abs(a - b).max():.0f}, mean |diff| {np.abs(a - b).mean():.3f}, "
      f"saturated reference pixels {100 * sat:.1f}%")
