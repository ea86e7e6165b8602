"""The peer side of bench/bench_sd.c: the same measurements with PyTorch +
diffusers (fp32, CPU, the same thread count) on the same model files.

  /opt/lmxref/bin/python bench/peer_diffusers.py MODEL WHAT W H REPS THREADS
  WHAT: text | unet1 | unet2 | vae
Prints one JSON line: {"side":"diffusers","what":..,"median_s":..,"peak_rss_mb":..}
"""
import json
import resource
import statistics
import sys
import time

import torch


def main():
    model, what, W, H, reps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(threads)
    h, w = H // 8, W // 8
    times = []
    with torch.no_grad():
        if what == "text":
            from transformers import CLIPTextModel
            m = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32).eval()
            ids = torch.full((1, 77), 49407, dtype=torch.long)
            ids[0, :10] = torch.arange(49406 - 9, 49407) % 49000
            run = lambda: m(ids)  # noqa: E731
        elif what.startswith("unet"):
            from diffusers import UNet2DConditionModel
            m = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32).eval()
            B = int(what[4:])
            x = torch.randn(B, 4, h, w)
            ctx = torch.randn(B, 77, 768)
            t = torch.tensor([500] * B)
            run = lambda: m(x, t, encoder_hidden_states=ctx)  # noqa: E731
        elif what == "vae":
            from diffusers import AutoencoderKL
            m = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32).eval()
            z = torch.randn(1, 4, h, w)
            run = lambda: m.decode(z)  # noqa: E731
        else:
            raise SystemExit(f"unknown WHAT {what}")
        run()  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": "diffusers", "what": what, "w": W, "h": H,
                      "median_s": statistics.median(times), "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()
