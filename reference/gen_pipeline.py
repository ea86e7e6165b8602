"""Golden outputs of diffusers' StableDiffusionPipeline on the tiny model.

For every scheduler loramix offers, run the whole txt2img pipeline on
tests/fixtures/models/tiny-sd (fp32, CPU, torch.manual_seed(seed) generator)
and store the final latents and the uint8 pixels diffusers' PIL conversion
gives. The C test (tests/golden/test_pipeline.c) runs `lmx_generate` with the
same settings on the folder and on the single-file copy and compares.

Each case's settings are stored in the file's metadata as JSON ("cases"),
so the C test reads them instead of repeating them.

Regenerate:  OMP_NUM_THREADS=2 /opt/lmxref/bin/python reference/gen_pipeline.py
"""
import json
import os

import numpy as np
import torch

import common

FOLDER = os.path.join(common.FIXTURES, "models", "tiny-sd")
OUT = "pipeline/golden_pipeline.safetensors"

# name: (scheduler class or None for the model's own, settings)
CASES = [
    ("pndm_default", None, dict(prompt="a red fox in the snow, highly detailed",
                                negative="blurry, low quality", steps=10, guidance=7.5,
                                seed=42, width=64, height=64)),
    ("dpmpp_2m", "DPMSolverMultistepScheduler", dict(
        prompt="RAW photo, subject, 8k uhd, dslr, iu1, long straight black hair",
        negative="cartoon, drawing", steps=12, guidance=7.0, seed=43, width=64, height=48)),
    ("ddim", "DDIMScheduler", dict(prompt="masterpiece, best quality, kamado nezuko",
                                   negative="", steps=8, guidance=10.0, seed=44,
                                   width=48, height=64)),
    ("euler", "EulerDiscreteScheduler", dict(prompt="a lighthouse at dusk", negative="fog",
                                             steps=8, guidance=7.5, seed=111, width=64, height=64)),
    ("euler_a", "EulerAncestralDiscreteScheduler", dict(
        prompt="a watercolor of a cat", negative="", steps=8, guidance=6.0, seed=7,
        width=64, height=64, n_images=2)),
    ("dpmpp_2m_noguid_clipskip", "DPMSolverMultistepScheduler", dict(
        prompt="th3r0ck with no hair, muscular male", negative="", steps=6, guidance=1.0,
        seed=5, width=64, height=64, clip_skip=1, timestep_spacing="trailing")),
]


def run_case(pipe, sched_cls, s):
    import diffusers
    base_cfg = pipe.scheduler.config
    if sched_cls is None:
        sched = pipe.scheduler.__class__.from_config(base_cfg)
    else:
        sched = getattr(diffusers, sched_cls).from_config(base_cfg)
    if "timestep_spacing" in s:
        sched = sched.__class__.from_config(sched.config, timestep_spacing=s["timestep_spacing"])
    pipe.scheduler = sched
    final = {}

    def grab(p, i, t, kw):
        final["latents"] = kw["latents"].detach().clone()
        return kw

    gen = torch.manual_seed(s["seed"])
    out = pipe(prompt=s["prompt"], negative_prompt=s["negative"] or None,
               num_inference_steps=s["steps"], guidance_scale=s["guidance"],
               width=s["width"], height=s["height"], generator=gen,
               num_images_per_prompt=s.get("n_images", 1), clip_skip=s.get("clip_skip"),
               output_type="np", callback_on_step_end=grab,
               callback_on_step_end_tensor_inputs=["latents"])
    img = out.images  # float32 [n, H, W, 3] in [0, 1], as postprocess gives
    u8 = (img * 255).round().astype("uint8")  # numpy_to_pil's conversion
    return final["latents"], u8, sched


def main():
    common.setup(seed=0)
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, safety_checker=None,
                                                   requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    tensors, meta = {}, []
    for name, cls, s in CASES:
        lat, u8, sched = run_case(pipe, cls, s)
        tensors[f"{name}.latents"] = lat
        tensors[f"{name}.image_u8"] = torch.from_numpy(u8.astype(np.int32))
        tensors[f"{name}.timesteps"] = sched.timesteps.to(torch.float32)
        case = dict(name=name, scheduler=cls or "default", **s)
        case.setdefault("n_images", 1)
        case.setdefault("clip_skip", 0)
        case["clip_skip"] = case["clip_skip"] or 0
        meta.append(case)
        print(f"{name}: latents {tuple(lat.shape)} |max| {lat.abs().max():.3f}, "
              f"image mean {u8.mean():.1f}, timesteps {sched.timesteps[:4].tolist()}...")
    common.save_golden(OUT, tensors, seed=0, extra_meta={"cases": json.dumps(meta)})


if __name__ == "__main__":
    main()
