"""Make a full-size SD1.5 model with random weights for the benchmarks.

A diffusers folder (model_index.json, unet/, text_encoder/, vae/, tokenizer/,
scheduler/) with the real SD1.5 configurations and seeded random weights
(PyTorch's default initialisation), stored as fp16 (1.7 GB; both loramix
and diffusers convert to fp32 at load). The cost of a forward pass does not
depend on the values. Never committed: written to bench/out/ (ignored).

  /opt/lmxref/bin/python bench/make_sd15_random.py [OUT_DIR]
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "reference"))
from gen_models import SD15_TEXT, SD15_UNET, SD15_VAE  # noqa: E402

SCHEDULER = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
             "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
             "trained_betas": None}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out", "sd15-random")
    if os.path.exists(os.path.join(out, "model_index.json")):
        print(f"{out} exists; delete it to rebuild")
        return
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(1234)
    os.makedirs(out, exist_ok=True)
    with torch.no_grad():
        text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).half()
        text.save_pretrained(os.path.join(out, "text_encoder"), safe_serialization=True)
        del text
        unet = UNet2DConditionModel(**SD15_UNET).half()
        unet.save_pretrained(os.path.join(out, "unet"), safe_serialization=True)
        del unet
        vae = AutoencoderKL(**SD15_VAE).half()
        vae.save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
        del vae
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "models", "tiny-sd", "tokenizer"),
                    os.path.join(out, "tokenizer"), dirs_exist_ok=True)
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER, f, indent=2)
    shutil.copy(os.path.join(ROOT, "tests", "fixtures", "models", "tiny-sd", "model_index.json"),
                os.path.join(out, "model_index.json"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
