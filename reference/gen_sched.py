"""Golden data for src/sched: torch's CPU generator, diffusers' scheduler
tables, timesteps, config resolution and full sampler trajectories.

Writes tests/fixtures/sched/{rng,tables,timesteps,configs,traj}.safetensors.
Run:  OMP_NUM_THREADS=2 /opt/lmxref/bin/python reference/gen_sched.py

torch 2.8.0 on an AVX-512 machine runs the AVX2 normal kernel (checked:
its randn equals the ATEN_CPU_CAPABILITY=avx2 one); the portable kernel's
numbers come from a child process started with ATEN_CPU_CAPABILITY=default.

Trajectories use a stand-in "model" computed identically here and in C:
    eps = fl32(0.1) * xin + fl32(sin(0.01 * t)) * w
with w a fixed seeded tensor and sin evaluated in double (Python's math.sin,
i.e. the C library's sin), so every difference comes from the scheduler.
"""
import inspect
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FIXTURES, ROOT, save_golden, setup  # noqa: E402

import diffusers  # noqa: E402
from diffusers.configuration_utils import FrozenDict  # noqa: E402
from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

CFG_DIR = os.path.join(FIXTURES, "sched", "configs")
SD15 = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None, "clip_sample": False,
}
CLASSES = ["DPMSolverMultistepScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
           "EulerAncestralDiscreteScheduler", "PNDMScheduler"]


def gen(seed):
    return torch.Generator().manual_seed(seed)


class cr_math:
    """Make torch's float32 sqrt/log/exp (and numpy's float32 log) correctly
    rounded while active.

    On the reference machine torch evaluates these through MKL's VML, which
    is not correctly rounded there (sqrt: ~20 % of results 1 ulp off, up to
    0.75 ulp error; log ~7 %, exp ~1 %), and numpy's AVX-512 float32 log
    differs from the correctly rounded one in ~20 %. loramix rounds
    correctly, so goldens made inside this context must match it bit for
    bit: they check the operation order of every formula. Goldens made
    outside it are the real reference and are compared with a tolerance.
    """

    def __enter__(self):
        T = torch.Tensor
        self.saved = (torch.sqrt, torch.log, torch.exp, T.sqrt, T.log, T.exp, T.__pow__, np.log)
        o_pow, o_nplog = T.__pow__, np.log

        def cr(fn64, orig):
            def f(t, *a, **k):
                if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and not a and not k:
                    with np.errstate(divide="ignore"):  # log(0) = -inf at DPM's final step
                        v = fn64(t.detach().double().numpy())
                    return torch.from_numpy(np.asarray(v).astype(np.float32))
                return orig(t, *a, **k)
            return f

        torch.sqrt, torch.log, torch.exp = (cr(np.sqrt, self.saved[0]), cr(np.log, self.saved[1]),
                                            cr(np.exp, self.saved[2]))
        T.sqrt, T.log, T.exp = cr(np.sqrt, self.saved[3]), cr(np.log, self.saved[4]), cr(np.exp, self.saved[5])

        def pow_(t, e):
            if isinstance(e, (int, float)) and e == 0.5 and t.dtype == torch.float32:
                return torch.from_numpy(np.asarray(np.sqrt(t.detach().double().numpy())).astype(np.float32))
            return o_pow(t, e)
        T.__pow__ = pow_

        def nplog(x, *a, **k):
            if isinstance(x, (np.ndarray, np.float32)) and np.asarray(x).dtype == np.float32 and not a and not k:
                return o_nplog(np.asarray(x, dtype=np.float64)).astype(np.float32)
            return o_nplog(x, *a, **k)
        np.log = nplog
        return self

    def __exit__(self, *exc):
        T = torch.Tensor
        (torch.sqrt, torch.log, torch.exp, T.sqrt, T.log, T.exp, T.__pow__, np.log) = self.saved
        return False


# ---------------------------------------------------------------- rng ------

RNG_SHAPES = {"1x4x8x8": (1, 4, 8, 8), "1x4x64x64": (1, 4, 64, 64),
              "1x4x128x96": (1, 4, 128, 96), "2x4x8x8": (2, 4, 8, 8)}
RNG_FULL = [(42, "1x4x8x8"), (0, "1x4x8x8"), (111, "1x4x8x8"), (7, "2x4x8x8"),
            (42, "1x4x64x64"), (111, "1x4x64x64"), (42, "1x4x128x96")]
# The C test replays exactly this list on one generator (seed 7).
SEQUENCE = [("randn", 5), ("randn", 16), ("randn", 3), ("rand", 2), ("randn", 1),
            ("randn", 33), ("randn", 256), ("randn", 7), ("seed", 7), ("randn", 3),
            ("randn", 20), ("randn", 1), ("randn", 1)]


def rng_tensors(prefix=""):
    out = {}
    for seed, name in RNG_FULL:
        out[f"{prefix}randn_s{seed}_{name}"] = torch.randn(RNG_SHAPES[name], generator=gen(seed))
    # tails of big draws for more seeds (the C test compares the last 1024 values)
    for seed in (43, 44, 111, 222, 2**40 + 5):
        x = torch.randn(RNG_SHAPES["1x4x128x96"], generator=gen(seed)).flatten()
        out[f"{prefix}tail1024_s{seed}_1x4x128x96"] = x[-1024:].clone()
    for seed in (0, 42, 12345):
        for n in range(1, 21):
            out[f"{prefix}randn_n{n}_s{seed}"] = torch.randn(n, generator=gen(seed))
        out[f"{prefix}randn_n33_s{seed}"] = torch.randn(33, generator=gen(seed))
    out[f"{prefix}rand10_s42"] = torch.rand(10, generator=gen(42))
    g = gen(7)
    seq = []
    for op, n in SEQUENCE:
        if op == "seed":
            g.manual_seed(n)
        elif op == "randn":
            seq.append(torch.randn(n, generator=g))
        else:
            seq.append(torch.rand(n, generator=g))
    out[f"{prefix}sequence_s7"] = torch.cat(seq)
    return out


def rng_child():
    """Run in a child with ATEN_CPU_CAPABILITY set; saves a .pt (argv[2]) of
    draws prefixed with the capability asked for."""
    torch.set_num_threads(2)
    cap = os.environ["ATEN_CPU_CAPABILITY"]
    reported = torch.backends.cpu.get_cpu_capability()
    assert reported == {"default": "NO AVX", "avx2": "AVX2"}[cap], reported
    out = {}
    for seed, name in [(42, "1x4x8x8"), (111, "1x4x8x8"), (7, "2x4x8x8")]:
        out[f"{cap}_randn_s{seed}_{name}"] = torch.randn(RNG_SHAPES[name], generator=gen(seed))
    for seed in (0, 42):
        for n in (1, 5, 16, 17, 20, 33):
            out[f"{cap}_randn_n{n}_s{seed}"] = torch.randn(n, generator=gen(seed))
    torch.save(out, sys.argv[2])


def make_rng():
    """Main tensors: this machine's own dispatch (torch 2.8.0 reports AVX512
    here and runs the AVX2 normal kernel). default_* and avx2_*: children
    forced to ATEN_CPU_CAPABILITY=default (the portable kernel) and avx2."""
    out = rng_tensors()
    for cap in ("default", "avx2"):
        tmp = os.path.join(FIXTURES, "sched", f"{cap}.pt.tmp")
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        subprocess.check_call([sys.executable, os.path.abspath(__file__), "--rng-child", tmp], env=env)
        child = torch.load(tmp)
        os.remove(tmp)
        assert all(k.startswith(cap + "_") for k in child), list(child)[:3]
        out.update(child)
    cap = torch.backends.cpu.get_cpu_capability()
    save_golden("sched/rng.safetensors", out, seed=0,
                extra_meta={"cpu_capability": cap, "sequence": json.dumps(SEQUENCE)})


# ------------------------------------------------------------- tables ------

class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def make_tables():
    out = {}
    cases = {
        "sd15": dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
        "linear": dict(),
        "cos": dict(beta_schedule="squaredcos_cap_v2"),
        "sd15_zsnr": dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          rescale_betas_zero_snr=True),
        "lin500": dict(num_train_timesteps=500, beta_start=0.001, beta_end=0.03),
        "lin77": dict(num_train_timesteps=77, beta_start=0.1, beta_end=0.7),
    }
    for world in ("", "torch_"):
        for name, kw in cases.items():
            with (cr_math() if world == "" else _nullctx()):
                s = diffusers.DPMSolverMultistepScheduler(**kw)
                d = diffusers.DDIMScheduler(**kw)
                out[f"{world}{name}_betas"] = s.betas
                out[f"{world}{name}_alphas"] = s.alphas
                out[f"{world}{name}_acp"] = s.alphas_cumprod      # DPM/Euler: zsnr sets acp[-1] = 2**-24
                out[f"{world}{name}_acp_ddim"] = d.alphas_cumprod  # DDIM keeps 0
                out[f"{world}{name}_sigmas"] = ((1 - s.alphas_cumprod) / s.alphas_cumprod) ** 0.5
    trained = np.linspace(0.0001, 0.02, 1000) ** 1.5
    s = diffusers.DDIMScheduler(trained_betas=trained.tolist())
    out["trained_betas_in"] = torch.from_numpy(trained.astype(np.float64)).float()
    out["trained_acp"] = s.alphas_cumprod
    save_golden("sched/tables.safetensors", out, seed=0,
                extra_meta={"cases": json.dumps(list(cases.items())),
                            "trained_betas": json.dumps(trained.tolist())})


# ---------------------------------------------------------- timesteps ------

STEPS = [1, 2, 10, 20, 25, 50, 61, 100, 200, 220]
BETAS = {"sd15": dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
         "linear": dict(beta_schedule="linear"),
         "cos": dict(beta_schedule="squaredcos_cap_v2")}


def schedule_of(cls_name, cfg, steps):
    cls = getattr(diffusers, cls_name)
    s = cls.from_config(cfg)
    s.set_timesteps(steps)
    ts = s.timesteps.to(torch.float32)
    sig = getattr(s, "sigmas", None)
    sig = sig.to(torch.float32) if cls_name in CLASSES[:4] and cls_name != "DDIMScheduler" else None
    ins = float(torch.as_tensor(s.init_noise_sigma, dtype=torch.float32))
    return ts, sig, ins


def make_timesteps():
    cases, ts_all, sig_all = [], [], []
    n_ts = n_sig = 0

    tt_all, st_all = [], []

    def add(cls_name, cfg, steps):
        nonlocal n_ts, n_sig
        try:
            with cr_math():
                ts, sig, ins = schedule_of(cls_name, cfg, steps)
            tt, stt, inst = schedule_of(cls_name, cfg, steps)  # the real torch/numpy numbers
            err = ""
        except Exception as e:  # diffusers refuses: C must refuse too
            ts, sig, ins, err = torch.zeros(0), None, 0.0, type(e).__name__
            tt, stt, inst = ts, sig, ins
        if sig is None:
            sig = stt = torch.zeros(0)
        assert len(tt) == len(ts) and len(stt) == len(sig)
        cases.append([cls_name, json.dumps(cfg, sort_keys=True), steps, n_ts, len(ts), n_sig,
                      len(sig), ins, err, inst])
        ts_all.append(ts)
        sig_all.append(sig)
        tt_all.append(tt)
        st_all.append(stt)
        n_ts += len(ts)
        n_sig += len(sig)

    pndm_prk = "PNDMScheduler"
    for bname, bkw in BETAS.items():
        steps_list = STEPS if bname == "sd15" else [10, 61]
        for spacing, offset in [("linspace", 0), ("leading", 0), ("leading", 1), ("trailing", 0)]:
            for steps in steps_list:
                for cls_name in CLASSES:
                    cfg = dict(bkw, timestep_spacing=spacing, steps_offset=offset)
                    if cls_name == "PNDMScheduler":
                        add(cls_name, dict(cfg, skip_prk_steps=True), steps)
                        add(pndm_prk, dict(cfg, skip_prk_steps=False), steps)
                    else:
                        add(cls_name, cfg, steps)
    sd = BETAS["sd15"]
    for steps in [1, 2, 10, 20, 25, 50, 100, 200]:
        for spacing in ["linspace", "leading", "trailing"]:
            add("DPMSolverMultistepScheduler", dict(sd, use_karras_sigmas=True, timestep_spacing=spacing), steps)
            add("DPMSolverMultistepScheduler", dict(sd, final_sigmas_type="sigma_min", timestep_spacing=spacing), steps)
            add("EulerDiscreteScheduler", dict(sd, use_karras_sigmas=True, timestep_spacing=spacing), steps)
            add("EulerDiscreteScheduler", dict(sd, final_sigmas_type="sigma_min", timestep_spacing=spacing), steps)
        add("DPMSolverMultistepScheduler", dict(sd, use_karras_sigmas=True, sigma_min=0.1, sigma_max=10.0), steps)
        add("EulerDiscreteScheduler", dict(sd, use_karras_sigmas=True, sigma_min=0.1, sigma_max=10.0), steps)
        add("EulerDiscreteScheduler", dict(sd, interpolation_type="log_linear"), steps)
        add("EulerDiscreteScheduler", dict(sd, timestep_type="continuous", prediction_type="v_prediction"), steps)
        add("DPMSolverMultistepScheduler", dict(BETAS["cos"], lambda_min_clipped=-5.1), steps)
        add("DPMSolverMultistepScheduler", dict(BETAS["cos"], lambda_min_clipped=-5.1, timestep_spacing="leading"), steps)
        add("DPMSolverMultistepScheduler", dict(BETAS["cos"], lambda_min_clipped=-5.1, timestep_spacing="trailing"), steps)
        for cls_name in CLASSES[:4]:
            add(cls_name, dict(sd, rescale_betas_zero_snr=True, timestep_spacing="trailing"), steps)
    save_golden("sched/timesteps.safetensors",
                {"timesteps": torch.cat(ts_all), "sigmas": torch.cat(sig_all),
                 "timesteps_torch": torch.cat(tt_all), "sigmas_torch": torch.cat(st_all)}, seed=0,
                extra_meta={"cases": json.dumps(cases),
                            "note": "timesteps/sigmas: correctly rounded sqrt/log/exp (cr_math); "
                                    "*_torch: torch as is (MKL VML)"})
    print(f"  {len(cases)} schedules, {sum(1 for c in cases if c[8])} refused by diffusers")


# ------------------------------------------------------------ configs ------

FIELDS = ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type",
          "timestep_spacing", "steps_offset", "rescale_betas_zero_snr", "clip_sample",
          "clip_sample_range", "set_alpha_to_one", "skip_prk_steps", "solver_order", "solver_type",
          "lower_order_final", "euler_at_final", "use_karras_sigmas", "final_sigmas_type",
          "lambda_min_clipped", "sigma_min", "sigma_max", "interpolation_type", "timestep_type"]


def resolved(sched):
    c = sched.config
    out = {}
    for k in FIELDS:
        if k in ("sigma_min", "sigma_max"):
            v = getattr(c, k, None) if hasattr(c, k) else None
        elif k in c:
            v = c[k]
        else:
            continue
        if isinstance(v, float) and math.isinf(v):
            v = "-inf" if v < 0 else "inf"
        out[k] = v
    return out


def pipeline_fixups(s):
    """StableDiffusionPipeline.__init__'s rewrites of the loaded scheduler."""
    if hasattr(s.config, "steps_offset") and s.config.steps_offset != 1:
        new = dict(s.config)
        new["steps_offset"] = 1
        s._internal_dict = FrozenDict(new)
    if hasattr(s.config, "clip_sample") and s.config.clip_sample is True:
        new = dict(s.config)
        new["clip_sample"] = False
        s._internal_dict = FrozenDict(new)


def make_configs():
    results = []
    for fname in sorted(os.listdir(CFG_DIR)):
        with open(os.path.join(CFG_DIR, fname)) as f:
            j = json.load(f)
        for target in CLASSES:
            cls = getattr(diffusers, target)
            for fix in (0, 1):
                try:
                    if fix:
                        orig = getattr(diffusers, j.get("_class_name", target))
                        o = orig.from_config(j)
                        pipeline_fixups(o)
                        s = o if orig is cls else cls.from_config(o.config)
                    else:
                        s = cls.from_config(j)
                    results.append([fname, target, fix, resolved(s), ""])
                except Exception as e:
                    results.append([fname, target, fix, {}, type(e).__name__ + ": " + str(e)[:80]])
    save_golden("sched/configs.safetensors", {"dummy": torch.zeros(1)}, seed=0,
                extra_meta={"results": json.dumps(results)})


# -------------------------------------------------------- trajectories ------

W_SEED = 1234


def model(xin, t, w):
    ct = math.sin(0.01 * float(t))
    return 0.1 * xin + ct * w


def run(cls_name, cfg, steps, seed, shape=(1, 4, 8, 8), eta=0.0, legacy=False, overrides=None):
    cls = getattr(diffusers, cls_name)
    s = cls.from_config(cfg, **(overrides or {}))
    s.set_timesteps(steps)
    g = gen(seed)
    x = randn_tensor(shape, generator=g, dtype=torch.float32)
    x = x * s.init_noise_sigma
    w = torch.randn(shape, generator=gen(W_SEED))
    xs = []
    params = inspect.signature(s.step).parameters
    for t in s.timesteps:
        xin = s.scale_model_input(x, t)
        eps = model(xin, t, w)
        kw = {}
        if "eta" in params:
            kw["eta"] = eta
        if "generator" in params:
            kw["generator"] = g
        if legacy:  # diffusers 0.26.3 Euler: one unused draw per step
            randn_tensor(eps.shape, generator=g, dtype=eps.dtype)
        x = s.step(eps, t, x, **kw, return_dict=False)[0]
        xs.append(x.clone())
    after = torch.randn(16, generator=g)
    return torch.stack(xs), after


def make_traj():
    sd = dict(SD15)
    trajs = []
    DPM = "DPMSolverMultistepScheduler"
    force = {"algorithm_type": "dpmsolver++"}
    T = []

    def add(name, cls_name, cfg, steps, keep_every=1, **kw):
        T.append((name, cls_name, cfg, steps, keep_every, kw))

    for steps in (10, 25):
        add(f"dpm_mid_{steps}", DPM, sd, steps, overrides=force)
        add(f"ddim_{steps}", "DDIMScheduler", sd, steps)
        add(f"euler_{steps}", "EulerDiscreteScheduler", sd, steps)
        add(f"euler_a_{steps}", "EulerAncestralDiscreteScheduler", sd, steps)
        add(f"pndm_{steps}", "PNDMScheduler", sd, steps)
    add("dpm_heun_25", DPM, dict(sd, solver_type="heun"), 25, overrides=force)
    add("dpm_o3_25", DPM, dict(sd, solver_order=3), 25, overrides=force)
    add("dpm_o3_10", DPM, dict(sd, solver_order=3), 10, overrides=force)
    add("dpm_o1_10", DPM, dict(sd, solver_order=1), 10, overrides=force)
    add("dpm_karras_25", DPM, dict(sd, use_karras_sigmas=True), 25, overrides=force)
    add("dpm_sigmamin_25", DPM, dict(sd, final_sigmas_type="sigma_min"), 25, overrides=force)
    add("dpm_v_10", DPM, dict(sd, prediction_type="v_prediction"), 10, overrides=force)
    add("dpm_sample_10", DPM, dict(sd, prediction_type="sample"), 10, overrides=force)
    add("dpm_leading_10", DPM, dict(sd, timestep_spacing="leading"), 10, overrides=force)
    add("dpm_trailing_61", DPM, dict(sd, timestep_spacing="trailing"), 61, keep_every=10, overrides=force)
    add("dpm_1", DPM, sd, 1, overrides=force)
    add("dpm_2", DPM, sd, 2, overrides=force)
    add("dpm_reality_100", DPM, sd, 100, keep_every=10, overrides=force)
    add("dpm_anime_200", DPM, sd, 200, keep_every=20, overrides=force)
    add("ddim_v_clip_10", "DDIMScheduler", dict(sd, prediction_type="v_prediction", clip_sample=True,
                                                set_alpha_to_one=True), 10)
    add("ddim_sample_10", "DDIMScheduler", dict(sd, prediction_type="sample"), 10)
    add("ddim_eta_10", "DDIMScheduler", sd, 10, eta=0.5)
    add("ddim_zsnr_trailing_10", "DDIMScheduler", dict(sd, rescale_betas_zero_snr=True,
                                                       timestep_spacing="trailing",
                                                       prediction_type="v_prediction"), 10)
    add("euler_leading_10", "EulerDiscreteScheduler", dict(sd, timestep_spacing="leading"), 10)
    add("euler_trailing_10", "EulerDiscreteScheduler", dict(sd, timestep_spacing="trailing"), 10)
    add("euler_v_10", "EulerDiscreteScheduler", dict(sd, prediction_type="v_prediction"), 10)
    add("euler_karras_10", "EulerDiscreteScheduler", dict(sd, use_karras_sigmas=True), 10)
    add("euler_legacy_10", "EulerDiscreteScheduler", sd, 10, legacy=True)
    add("euler_a_leading_10", "EulerAncestralDiscreteScheduler", dict(sd, timestep_spacing="leading"), 10)
    add("euler_a_v_10", "EulerAncestralDiscreteScheduler", dict(sd, prediction_type="v_prediction"), 10)
    add("euler_a_2x_10", "EulerAncestralDiscreteScheduler", sd, 10, shape=(2, 4, 8, 8))
    add("pndm_v_10", "PNDMScheduler", dict(sd, prediction_type="v_prediction"), 10)
    add("pndm_prk_10", "PNDMScheduler", dict(sd, skip_prk_steps=False), 10)
    add("pndm_prk_25", "PNDMScheduler", dict(sd, skip_prk_steps=False, set_alpha_to_one=True), 25)
    add("pndm_1", "PNDMScheduler", sd, 1)
    add("pndm_2", "PNDMScheduler", sd, 2)

    # The real-torch trajectories (MKL sqrt/log/exp) kept for a tolerance test.
    torch_world = {"dpm_mid_25", "ddim_25", "euler_25", "euler_a_25", "pndm_25", "dpm_reality_100",
                   "dpm_karras_25", "pndm_prk_10"}
    out = {"w_1x4x8x8": torch.randn((1, 4, 8, 8), generator=gen(W_SEED)),
           "w_2x4x8x8": torch.randn((2, 4, 8, 8), generator=gen(W_SEED))}
    for name, cls_name, cfg, steps, keep_every, kw in T:
        seed = 42
        shape = kw.pop("shape", (1, 4, 8, 8))
        with cr_math():
            xs, after = run(cls_name, cfg, steps, seed, shape=shape, **kw)
        n = xs.shape[0]
        # every step, or pairs of consecutive steps (so that a step can be
        # replayed from the reference input) every keep_every steps
        keep = [i for i in range(n)
                if keep_every == 1 or i < 3 or i == n - 1 or i % keep_every >= keep_every - 2]
        out[f"{name}_x"] = xs[keep]
        out[f"{name}_keep"] = torch.tensor(keep, dtype=torch.int64)
        out[f"{name}_after"] = after
        if name in torch_world:
            xt, at = run(cls_name, cfg, steps, seed, shape=shape, **kw)
            out[f"torch_{name}_x"] = xt[keep]
            out[f"torch_{name}_after"] = at
        trajs.append({"name": name, "class": cls_name, "config": cfg, "steps": steps,
                      "seed": seed, "shape": list(shape), "n_calls": n,
                      "eta": kw.get("eta", 0.0), "legacy": bool(kw.get("legacy", False)),
                      "overrides": kw.get("overrides", {}), "torch": name in torch_world})
    save_golden("sched/traj.safetensors", out, seed=42,
                extra_meta={"trajectories": json.dumps(trajs), "w_seed": W_SEED,
                            "note": "<name>_x: correctly rounded sqrt/log/exp (cr_math); "
                                    "torch_<name>_x: torch as is (MKL VML)"})


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--rng-child":
        rng_child()
        return
    setup(0)
    what = sys.argv[1:] or ["rng", "tables", "timesteps", "configs", "traj"]
    for w in what:
        {"rng": make_rng, "tables": make_tables, "timesteps": make_timesteps,
         "configs": make_configs, "traj": make_traj}[w]()


if __name__ == "__main__":
    main()
