/*
 * cmd_generate.c - `loramix generate`: text-to-image with a Stable Diffusion
 * 1.x model. Parses flags into lmx_gen_params and calls the public API; the
 * progress bar is drawn here (stderr, only when it is a terminal).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

static const char HELP[] =
    "usage: loramix generate -m MODEL -p PROMPT [options]\n"
    "\n"
    "Generate images from a text prompt with a Stable Diffusion 1.x model.\n"
    "For the same model, prompt, seed, scheduler and steps the image equals what\n"
    "diffusers' StableDiffusionPipeline makes on the CPU in fp32 (within a pixel\n"
    "level), so results can be reproduced on either side.\n"
    "\n"
    "model:\n"
    "  -m, --model PATH       a diffusers folder (model_index.json, unet/, ...) or a\n"
    "                         single-file checkpoint (.safetensors, as on Civitai).\n"
    "                         Pickle .ckpt files are refused: convert them first.\n"
    "      --vae PATH         replace the model's VAE (folder or .safetensors), e.g.\n"
    "                         stabilityai/sd-vae-ft-mse for realistic models\n"
    "\n"
    "what to draw:\n"
    "  -p, --prompt TEXT      the prompt (77 CLIP tokens at most; the rest is dropped\n"
    "                         with a warning naming the dropped words)\n"
    "  -n, --negative TEXT    the negative prompt (default: empty)\n"
    "  -W, --width N          image width in pixels, a multiple of 8\n"
    "  -H, --height N         image height in pixels, a multiple of 8\n"
    "                         (default for both: the model's native size, 512 for SD1.5)\n"
    "\n"
    "sampling:\n"
    "      --steps N          denoising steps (default 30)\n"
    "      --cfg G            classifier-free guidance scale (default 7.5; <= 1 turns\n"
    "                         guidance off and halves the work)\n"
    "      --seed S           random seed (default 42); the initial noise equals\n"
    "                         torch.manual_seed(S); torch.randn(...) on the CPU\n"
    "      --scheduler NAME   dpm++2m | ddim | euler | euler_a | pndm (default: the\n"
    "                         model's scheduler_config.json; PNDM for SD1.5)\n"
    "      --timestep-spacing linspace | leading | trailing (default: from the config)\n"
    "      --clip-skip K      use the text encoder's K-th layer from the end (A1111's\n"
    "                         \"CLIP skip K+1\"); default 0 = last layer\n"
    "      --images N         images from one seed stream, as diffusers'\n"
    "                         num_images_per_prompt (default 1)\n"
    "\n"
    "output:\n"
    "  -o, --output FILE      PNG to write (default out.png; with --images N > 1,\n"
    "                         out-1.png ... out-N.png). The PNG stores the generation\n"
    "                         parameters: an A1111-style 'parameters' text chunk (PNG\n"
    "                         Info in A1111/ComfyUI shows it) and a 'loramix' JSON chunk.\n"
    "  -q, --quiet            no progress bar or summary\n"
    "\n"
    "speed:\n"
    "      --threads N        compute threads (default: all cores)\n"
    "      --precision P      fp32 (default, matches diffusers) or bf16 (about 2x\n"
    "                         faster on CPUs with AVX512-BF16, slightly different image)\n"
    "      --winograd         use Winograd 3x3 convolutions (fp32; faster, ~1e-6 rel.)\n"
    "\n"
    "examples:\n"
    "  loramix generate -m tests/fixtures/models/tiny-sd -p \"a red fox\" -o fox.png\n"
    "  loramix generate -m realisticVision.safetensors --vae sd-vae-ft-mse \\\n"
    "      -p \"RAW photo, a woman in a library\" -n \"cartoon, blurry\" \\\n"
    "      --scheduler dpm++2m --steps 25 --cfg 7 --seed 43 -W 768 -H 1024\n";

typedef struct progress_state {
    int enabled;
    const char *what;
} progress_state;

static void on_progress(int step, int n_steps, double elapsed, void *user) {
    progress_state *ps = user;
    if (!ps->enabled || n_steps <= 0) return;
    int width = 30, filled = (int)((double)width * step / n_steps);
    double per = step > 0 ? elapsed / step : 0;
    double eta = per * (n_steps - step);
    fprintf(stderr, "\r%s %3d/%-3d [", ps->what, step, n_steps);
    for (int i = 0; i < width; i++) fputc(i < filled ? '=' : (i == filled ? '>' : ' '), stderr);
    fprintf(stderr, "] %6.2f s/step  ETA %4.0f s ", per, eta);
    if (step == n_steps) fputc('\n', stderr);
    fflush(stderr);
}

static char *output_name(const char *out, int i, int n) {
    size_t len = strlen(out) + 32;
    char *s = malloc(len);
    if (!s) return NULL;
    if (n == 1) {
        snprintf(s, len, "%s", out);
        return s;
    }
    const char *dot = strrchr(out, '.');
    const char *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    snprintf(s, len, "%.*s-%d%s", (int)(dot - out), out, i + 1, dot);
    return s;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *vae = NULL, *out = "out.png", *sched = NULL, *precision = "fp32";
    int help = 0, quiet = 0, threads = 0, winograd = 0;
    lmx_gen_params p = lmx_gen_params_default();
    int images = 1;
    const arg_opt opts[] = {
        {"--model", "-m", ARG_STR, &model, 0, 0},
        {"--vae", NULL, ARG_STR, &vae, 0, 0},
        {"--prompt", "-p", ARG_STR, &p.prompt, 0, 0},
        {"--negative", "-n", ARG_STR, &p.negative_prompt, 0, 0},
        {"--width", "-W", ARG_INT, &p.width, 8, 8192},
        {"--height", "-H", ARG_INT, &p.height, 8, 8192},
        {"--steps", NULL, ARG_INT, &p.steps, 1, 1000},
        {"--cfg", NULL, ARG_FLOAT, &p.guidance, 0, 100},
        {"--seed", NULL, ARG_U64, &p.seed, 0, 0},
        {"--scheduler", NULL, ARG_STR, &sched, 0, 0},
        {"--timestep-spacing", NULL, ARG_STR, &p.timestep_spacing, 0, 0},
        {"--clip-skip", NULL, ARG_INT, &p.clip_skip, 0, 11},
        {"--images", NULL, ARG_INT, &images, 1, 64},
        {"--output", "-o", ARG_STR, &out, 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0},
        {"--threads", NULL, ARG_INT, &threads, 0, 1024},
        {"--precision", NULL, ARG_STR, &precision, 0, 0},
        {"--winograd", NULL, ARG_FLAG, &winograd, 0, 0},
    };
    int rc = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, &help);
    if (rc) return rc;
    if (help) {
        fputs(HELP, stdout);
        return CLI_OK;
    }
    if (!model) {
        cli_error("generate: --model is required (see loramix generate --help)");
        return CLI_USAGE;
    }
    if (!p.prompt) {
        cli_error("generate: --prompt is required (see loramix generate --help)");
        return CLI_USAGE;
    }
    if (p.width % 8 || p.height % 8) {
        cli_error("generate: %s must be a multiple of 8, got %d", p.width % 8 ? "--width" : "--height",
                  p.width % 8 ? p.width : p.height);
        return CLI_USAGE;
    }
    if (sched && lmx_scheduler_parse(sched, &p.scheduler) != LMX_OK) return cli_fail_status(LMX_ERR_ARG);
    if (p.timestep_spacing && strcmp(p.timestep_spacing, "linspace") &&
        strcmp(p.timestep_spacing, "leading") && strcmp(p.timestep_spacing, "trailing")) {
        cli_error("--timestep-spacing: expected linspace, leading or trailing, got '%s'", p.timestep_spacing);
        return CLI_USAGE;
    }
    lmx_model_params mp = lmx_model_params_default();
    mp.vae_path = vae;
    mp.winograd = winograd;
    mp.n_threads = threads;
    if (!strcmp(precision, "fp32")) mp.precision = LMX_PREC_F32;
    else if (!strcmp(precision, "bf16")) mp.precision = LMX_PREC_BF16;
    else {
        cli_error("--precision: expected fp32 or bf16, got '%s'", precision);
        return CLI_USAGE;
    }
    p.n_images = images;
    lmx_set_threads(threads);

    progress_state ps = {!quiet && isatty(2), "denoise"};
    p.progress = on_progress;
    p.progress_user = &ps;

    lmx_model *m = NULL;
    lmx_ctx *ctx = NULL;
    lmx_image *imgs = calloc((size_t)images, sizeof *imgs);
    lmx_status st = imgs ? LMX_OK : LMX_ERR_NOMEM;
    double t0 = cli_now();
    if (st == LMX_OK) st = lmx_model_load(&m, model, &mp);
    double t_load = cli_now() - t0;
    if (st == LMX_OK) st = lmx_ctx_create(&ctx, m);
    if (st == LMX_OK) st = lmx_generate(ctx, &p, imgs);
    rc = CLI_OK;
    if (st != LMX_OK) {
        rc = cli_fail_status(st);
    } else {
        for (int i = 0; i < images && rc == CLI_OK; i++) {
            char *name = output_name(out, i, images);
            st = name ? lmx_image_save_png(&imgs[i], name) : LMX_ERR_NOMEM;
            if (st != LMX_OK) rc = cli_fail_status(st);
            else if (!quiet) fprintf(stderr, "wrote %s (%dx%d)\n", name, imgs[i].width, imgs[i].height);
            free(name);
        }
        if (!quiet && rc == CLI_OK)
            fprintf(stderr, "model load %.2f s, total %.2f s\n", t_load, cli_now() - t0);
    }
    for (int i = 0; imgs && i < images; i++) lmx_image_free(&imgs[i]);
    free(imgs);
    lmx_ctx_free(ctx);
    lmx_model_free(m);
    return rc;
}
