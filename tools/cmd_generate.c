/*
 * cmd_generate.c - `loramix generate`: text-to-image with a Stable Diffusion
 * 1.x model. Parses flags into lmx_gen_params and calls the public API; the
 * progress is printed here (stderr: a bar on a terminal, else a line per
 * 10% of the steps).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "cli.h"
#include "compose/compose.h"
#include "lora_args.h"

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
    "      --allow-gaps       accept .safetensors files (model, VAE, LoRAs) whose\n"
    "                         tensors leave unreferenced bytes in the data area\n"
    "                         (refused by default, as the reference reader does)\n"
    "      --vae PATH         replace the model's VAE (folder or .safetensors), e.g.\n"
    "                         stabilityai/sd-vae-ft-mse for realistic models\n"
    "\n"
    "what to draw:\n"
    "  -p, --prompt TEXT      the prompt (77 CLIP tokens at most; the rest is dropped\n"
    "                         with a warning naming the dropped words)\n"
    "  -n, --negative TEXT    the negative prompt (default: empty)\n"
    "  -W, --width N          image width in pixels, a multiple of 8\n"
    "  -H, --height N         image height in pixels, a multiple of 8\n"
    "                         (default for both: the model's native size, 512 for SD1.5;\n"
    "                         at most 8192). Above 2048x2048 pixels, or when the\n"
    "                         estimated working memory exceeds the available RAM, the\n"
    "                         estimate is printed and the run refused unless --yes\n"
    "      --yes              run such a size anyway\n"
    "\n"
    "sampling:\n"
    "      --steps N          denoising steps (default 30). The most a scheduler takes\n"
    "                         depends on the model's scheduler_config.json and is\n"
    "                         checked before denoising; with SD1.5's config: ddim 999,\n"
    "                         pndm 999, dpm++2m 1000, euler 1000, euler_a 1000\n"
    "                         (docs/schedulers.md lists the rule)\n"
    "      --cfg G            classifier-free guidance scale (default 7.5; <= 1 turns\n"
    "                         guidance off and halves the work)\n"
    "      --seed S           random seed (default 42); the initial noise equals\n"
    "                         torch.manual_seed(S); torch.randn(...) on the CPU\n"
    "      --scheduler NAME   dpm++2m | ddim | euler | euler_a | pndm (default: the\n"
    "                         model's scheduler_config.json; PNDM for SD1.5)\n"
    "      --timestep-spacing linspace | leading | trailing (default: from the config)\n"
    "      --karras           Karras sigmas (use_karras_sigmas=true in diffusers;\n"
    "                         A1111's \"DPM++ 2M Karras\", \"Euler Karras\"): dpm++2m\n"
    "                         and euler only, an error with the other schedulers\n"
    "      --clip-skip K      use the text encoder's K-th layer from the end (A1111's\n"
    "                         \"CLIP skip K+1\"); default 0 = last layer\n"
    "      --rng K            x86 (default) or portable: which of torch's CPU randn\n"
    "                         kernels to match. Use portable to match diffusers on\n"
    "                         ARM (Apple silicon) or generic torch builds\n"
    "      --images N         images from one seed stream, as diffusers'\n"
    "                         num_images_per_prompt (default 1)\n"
    "\n"
    ;

static const char HELP_LORA[] =
    "LoRAs (repeat --lora; the order is the composition order, character first):\n"
    "      --lora FILE[:S]    a LoRA (kohya or diffusers/PEFT .safetensors); S scales\n"
    "                         it (default 1). These apply to the --lora before them:\n"
    "        --trigger TEXT   its trigger phrase(s), repeatable: commas separate\n"
    "                         phrases (\"a, b\" gives two); put a phrase that holds a\n"
    "                         comma in double quotes: --trigger '\"red, white\", hat'\n"
    "                         gives \"red, white\" and \"hat\" (\"\" inside quotes is a\n"
    "                         literal quote). The W-methods weigh LoRAs by them. Without triggers\n"
    "                         loramix shows the LoRA's training tags as a hint\n"
    "        --category C     character|clothing|style|background|object|other\n"
    "        --name NAME      its name in messages and in the PNG\n"
    "        --te-scale S     a separate text-encoder scale\n"
    "      --manifest FILE    a lora_info JSON (the ComposLoRA testbed form); then\n"
    "                         --lora ID loads --lora-dir/ID.safetensors with the\n"
    "                         manifest's triggers and category\n"
    "      --lora-dir DIR     where manifest ids are found (default: its folder)\n"
    "      --lora-scale L     global scale of every LoRA (diffusers' cross_attention\n"
    "                         \"scale\"; the ComposLoRA testbed uses 0.8; default 1)\n"
    "      --lora-merged      merge the LoRAs into a private copy of the touched\n"
    "                         weights (--method merge only; same image up to rounding)\n"
    "\n"
    "multi-LoRA composition:\n"
    "      --method M         merge (default: all LoRAs at every step), switch (one\n"
    "                         LoRA per step, cycling), composite (one UNet pass per\n"
    "                         LoRA, averaged), w-switch, w-composite (prompt-aware\n"
    "                         weights: Tsoumplekas et al. 2026)\n"
    "      --switch-steps N   switch interval tau (default 5)\n"
    "      --tail-steps N     W-Switch: the last N steps use the character (default 5);\n"
    "                         with PNDM the schedule has steps+1 entries and N counts\n"
    "                         UNet calls, as the reference does (docs/composition.md)\n"
    "      --weighting W      paw | ptw | uniform | manual:w1,w2,... (default: PAW for\n"
    "                         w-switch, PTW for w-composite). Manual weights (one per\n"
    "                         LoRA, >= 0) are normalised to sum 1: manual:1,3 is\n"
    "                         0.25, 0.75; both the given and the normalised values\n"
    "                         are printed\n"
    "      --switch-timing T  clean (default; the paper's schedule) or reference (the\n"
    "                         reference code's one-step shift, to reproduce its images)\n"
    "      --round R          half-even (default, numpy) or half-up block lengths\n"
    "      --weights-te T     base (default: weights from the plain text encoder) or\n"
    "                         generation (with the method's text-encoder LoRAs)\n"
    "  The weights and the per-step LoRA schedule are printed and stored in the PNG.\n"
    "\n";

static const char HELP_OUT[] =
    "output:\n"
    "  -o, --output FILE      PNG to write (default out.png; with --images N > 1,\n"
    "                         out-1.png ... out-N.png). The PNG stores the generation\n"
    "                         parameters: an A1111-style 'parameters' text chunk (PNG\n"
    "                         Info in A1111/ComfyUI shows it) and a 'loramix' JSON chunk.\n"
    "                         '-' writes the PNG to standard output (nothing else goes\n"
    "                         there). A character device (/dev/null) or FIFO is written\n"
    "                         directly; with --images N > 1 all N PNGs go to it in turn.\n"
    "                         A symlink is followed (its target is written, the link\n"
    "                         stays). The folder, permissions and name are checked\n"
    "                         before the model is loaded.\n"
    "      --overwrite        replace an existing file (without it, an existing file is\n"
    "                         an error). A replaced file keeps its permissions; a\n"
    "                         read-only file is never replaced; new files get 0666\n"
    "                         minus the umask. See docs/file-formats.md\n"
    "  -q, --quiet            no progress or summary (progress: a bar when stderr is\n"
    "                         a terminal, else a line every 10%% of the steps)\n"
    "\n"
    "speed:\n"
    "      --threads N        compute threads (default 0: all cores). More than the\n"
    "                         online cores warns; more than 4 per core is refused\n"
    "      --precision P      fp32 (default, matches diffusers) or bf16 (about 2x\n"
    "                         faster on CPUs with AVX512-BF16, slightly different image;\n"
    "                         needs AVX-512: refused with a message on AVX2-only CPUs)\n"
    "      --winograd         use Winograd 3x3 convolutions (fp32; faster, ~1e-6 rel.)\n"
    "\n"
    "examples:\n"
    "  loramix generate -m sd15 -p \"RAW photo, iu1, long straight black hair, lib_bg\" \\\n"
    "      --lora-scale 0.8 --method w-switch \\\n"
    "      --lora iu.safetensors --category character --trigger \"iu1, long straight black hair\" \\\n"
    "      --lora library.safetensors --category background --trigger lib_bg\n"
    "  loramix generate -m tests/fixtures/models/tiny-sd -p \"a red fox\" -o fox.png\n"
    "  loramix generate -m realisticVision.safetensors --vae sd-vae-ft-mse \\\n"
    "      -p \"RAW photo, a woman in a library\" -n \"cartoon, blurry\" \\\n"
    "      --scheduler dpm++2m --steps 25 --cfg 7 --seed 43 -W 768 -H 1024\n";

typedef struct progress_state {
    int enabled; /* 0: none (-q), 1: a bar (terminal), 2: lines (log, pipe) */
    const char *what;
} progress_state;

static void on_progress(int step, int n_steps, double elapsed, void *user) {
    progress_state *ps = user;
    if (!ps->enabled || n_steps <= 0) return;
    int width = 30, filled = (int)((double)width * step / n_steps);
    double per = step > 0 ? elapsed / step : 0;
    double eta = per * (n_steps - step);
    if (ps->enabled == 2) { /* every step when few, else every 10% */
        if (step != n_steps && (int64_t)step * 10 / n_steps == (int64_t)(step - 1) * 10 / n_steps) return;
        fprintf(stderr, "%s %d/%d (%d%%)  %.2f s/step  ETA %.0f s\n", ps->what, step, n_steps,
                (int)((int64_t)step * 100 / n_steps), per, eta);
        fflush(stderr);
        return;
    }
    fprintf(stderr, "\r%s %3d/%-3d [", ps->what, step, n_steps);
    for (int i = 0; i < width; i++) fputc(i < filled ? '=' : (i == filled ? '>' : ' '), stderr);
    fprintf(stderr, "] %6.2f s/step  ETA %4.0f s ", per, eta);
    if (step == n_steps) fputc('\n', stderr);
    fflush(stderr);
}

/* "-", or a character device or FIFO (symlinks followed): one stream that
 * receives every image in turn. */
static int output_is_stream(const char *out) {
    struct stat sb;
    if (!strcmp(out, "-")) return 1;
    return stat(out, &sb) == 0 && (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode));
}

static char *output_name(const char *out, int i, int n) {
    size_t len = strlen(out) + 32;
    char *s = malloc(len);
    if (!s) return NULL;
    if (n == 1 || output_is_stream(out)) {
        snprintf(s, len, "%s", out);
        return s;
    }
    const char *dot = strrchr(out, '.');
    const char *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    snprintf(s, len, "%.*s-%d%s", (int)(dot - out), out, i + 1, dot);
    return s;
}

/* The composition the engine ran (from the image's JSON): method, weights,
 * and the per-step LoRA schedule, one symbol per step. */
static void print_composition(const char *json) {
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    cJSON *c = j ? cJSON_GetObjectItem(j, "composition") : NULL;
    cJSON *l = j ? cJSON_GetObjectItem(j, "loras") : NULL;
    if (!c) {
        cJSON_Delete(j);
        return;
    }
    cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, l) {
        cJSON *nm = cJSON_GetObjectItem(it, "name"), *cat = cJSON_GetObjectItem(it, "category");
        fprintf(stderr, "lora %d: %s (%s)\n", i++, cJSON_IsString(nm) ? nm->valuestring : "?",
                cJSON_IsString(cat) ? cat->valuestring : "?");
    }
    cJSON *m = cJSON_GetObjectItem(c, "method");
    fprintf(stderr, "method: %s", cJSON_IsString(m) ? m->valuestring : "?");
    cJSON *wk = cJSON_GetObjectItem(c, "weighting"), *w = cJSON_GetObjectItem(c, "weights");
    if (cJSON_IsString(wk)) fprintf(stderr, ", weighting %s", wk->valuestring);
    cJSON *sco = cJSON_GetObjectItem(c, "scores");
    if (cJSON_IsString(wk) && !strcmp(wk->valuestring, "manual") && cJSON_IsArray(sco)) {
        fprintf(stderr, ", given");
        cJSON_ArrayForEach(it, sco) fprintf(stderr, " %g", it->valuedouble);
        fprintf(stderr, ", normalised to sum 1:");
    } else if (cJSON_IsArray(w)) {
        fprintf(stderr, ", weights");
    }
    if (cJSON_IsArray(w)) cJSON_ArrayForEach(it, w) fprintf(stderr, " %.4f", it->valuedouble);
    cJSON *sc = cJSON_GetObjectItem(c, "schedule");
    if (cJSON_IsString(sc)) fprintf(stderr, "\nschedule (LoRA per step): %s", sc->valuestring);
    fputc('\n', stderr);
    cJSON_Delete(j);
}

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (uint64_t)kb * 1024u;
}

/* Sizes that could exhaust the machine: above GEN_MAX_PIXELS pixels or an
 * estimated working memory above what is available, refused unless --yes
 * (the estimate is printed either way). */
#define GEN_MAX_PIXELS (2048 * 2048)
static int check_size(const lmx_model *m, const lmx_gen_params *p, int yes, int quiet) {
    const double gib = 1024.0 * 1024.0 * 1024.0;
    const double need = (double)lmx_generate_memory(m, p), avail = (double)mem_available();
    const int big = (double)p->width * p->height > GEN_MAX_PIXELS;
    if (!big && !(avail > 0 && need > avail)) return CLI_OK;
    if (yes) {
        if (!quiet)
            fprintf(stderr, "loramix: note: %dx%d: about %.1f GiB of working memory besides the weights (%.1f GiB available); going on (--yes)\n",
                    p->width, p->height, need / gib, avail / gib);
        return CLI_OK;
    }
    cli_error("generate: %dx%d needs about %.1f GiB of working memory besides the model's weights "
              "(%.1f GiB available); above 2048x2048 pixels or the available memory, add --yes to run it",
              p->width, p->height, need / gib, avail / gib);
    return CLI_USAGE;
}

int cmd_generate(int argc, char **argv) {
    const char *rng = NULL;
    const char *model = NULL, *vae = NULL, *out = "out.png", *sched = NULL, *precision = "fp32";
    int help = 0, quiet = 0, threads = 0, winograd = 0, overwrite = 0, yes = 0, mp_allow_gaps = 0;
    lmx_gen_params p = lmx_gen_params_default();
    int images = 1, merged = 0;
    float lora_scale = 1.0f;
    const char *method = NULL, *weighting = NULL, *timing = NULL, *rounding = NULL, *weights_te = NULL;
    int switch_steps = 5, tail_steps = 5;
    cli_loras ls;
    int rc = cli_loras_take(&argc, argv, &ls);
    if (rc) {
        cli_loras_free(&ls);
        return rc;
    }
    double *manual = NULL;
    const arg_opt opts[] = {
        {"--model", "-m", ARG_STR, &model, 0, 0},
        {"--vae", NULL, ARG_STR, &vae, 0, 0},
        {"--prompt", "-p", ARG_STR, &p.prompt, 0, 0},
        {"--negative", "-n", ARG_STR, &p.negative_prompt, 0, 0},
        {"--width", "-W", ARG_INT, &p.width, 8, 8192},
        {"--height", "-H", ARG_INT, &p.height, 8, 8192},
        {"--steps", NULL, ARG_INT, &p.steps, 1, 10000},
        {"--cfg", NULL, ARG_FLOAT, &p.guidance, 0, 100},
        {"--seed", NULL, ARG_U64, &p.seed, 0, 0},
        {"--scheduler", NULL, ARG_STR, &sched, 0, 0},
        {"--timestep-spacing", NULL, ARG_STR, &p.timestep_spacing, 0, 0},
        {"--karras", NULL, ARG_FLAG, &p.karras_sigmas, 0, 0},
        {"--clip-skip", NULL, ARG_INT, &p.clip_skip, 0, 11},
        {"--images", NULL, ARG_INT, &images, 1, 64},
        {"--rng", NULL, ARG_STR, &rng, 0, 0},
        {"--output", "-o", ARG_STR, &out, 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0},
        {"--overwrite", NULL, ARG_FLAG, &overwrite, 0, 0},
        {"--threads", NULL, ARG_INT, &threads, 0, 1024},
        {"--precision", NULL, ARG_STR, &precision, 0, 0},
        {"--winograd", NULL, ARG_FLAG, &winograd, 0, 0},
        {"--yes", NULL, ARG_FLAG, &yes, 0, 0},
        {"--allow-gaps", NULL, ARG_FLAG, &mp_allow_gaps, 0, 0},
        {"--lora-scale", NULL, ARG_FLOAT, &lora_scale, -100, 100},
        {"--lora-merged", NULL, ARG_FLAG, &merged, 0, 0},
        {"--method", NULL, ARG_STR, &method, 0, 0},
        {"--switch-steps", NULL, ARG_INT, &switch_steps, 1, 10000},
        {"--tail-steps", NULL, ARG_INT, &tail_steps, 0, 10000},
        {"--weighting", NULL, ARG_STR, &weighting, 0, 0},
        {"--switch-timing", NULL, ARG_STR, &timing, 0, 0},
        {"--round", NULL, ARG_STR, &rounding, 0, 0},
        {"--weights-te", NULL, ARG_STR, &weights_te, 0, 0},
    };
    rc = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, &help);
    if (rc || help) {
        if (help) {
            fputs(HELP, stdout);
            fputs(HELP_LORA, stdout);
            fputs(HELP_OUT, stdout);
        }
        cli_loras_free(&ls);
        return rc;
    }
    rc = CLI_USAGE;
    if (rng && strcmp(rng, "x86") && strcmp(rng, "portable")) {
        cli_error("--rng: expected x86 or portable, got '%s'", rng);
        goto usage;
    }
    p.rng = rng && !strcmp(rng, "portable") ? LMX_RNG_TORCH_PORTABLE : LMX_RNG_TORCH_X86;
    p.compose = lmx_compose_default();
    p.compose.switch_steps = switch_steps;
    p.compose.tail_steps = tail_steps;
    if (method && lmx_method_parse(method, &p.compose.method) != LMX_OK) goto usage_status;
    if (weighting && !strncmp(weighting, "manual:", 7)) {
        int n_w = 0;
        if (compose_parse_manual(weighting + 7, ls.n, &manual, &n_w) != LMX_OK) goto usage_status;
        p.compose.weighting = LMX_WEIGHTING_MANUAL;
        p.compose.manual_weights = manual;
    } else if (weighting && lmx_weighting_parse(weighting, &p.compose.weighting) != LMX_OK) {
        goto usage_status;
    }
    if (timing && strcmp(timing, "clean") && strcmp(timing, "reference")) {
        cli_error("--switch-timing: expected clean or reference, got '%s'", timing);
        goto usage;
    }
    p.compose.switch_timing_reference = timing && !strcmp(timing, "reference");
    if (rounding && strcmp(rounding, "half-even") && strcmp(rounding, "half-up")) {
        cli_error("--round: expected half-even or half-up, got '%s'", rounding);
        goto usage;
    }
    p.compose.round_half_up = rounding && !strcmp(rounding, "half-up");
    if (weights_te && strcmp(weights_te, "base") && strcmp(weights_te, "generation")) {
        cli_error("--weights-te: expected base or generation, got '%s'", weights_te);
        goto usage;
    }
    p.compose.weights_te_generation = weights_te && !strcmp(weights_te, "generation");
    if (p.compose.method != LMX_METHOD_MERGE && ls.n == 0) {
        cli_error("--method %s: give the LoRAs to compose with --lora", lmx_method_name(p.compose.method));
        goto usage;
    }
    p.lora_scale = lora_scale;
    p.lora_merged = merged;
    if (!model) {
        cli_error("generate: --model is required (see loramix generate --help)");
        goto usage;
    }
    if (!p.prompt) {
        cli_error("generate: --prompt is required (see loramix generate --help)");
        goto usage;
    }
    if (p.width % 8 || p.height % 8) {
        cli_error("generate: %s must be a multiple of 8, got %d", p.width % 8 ? "--width" : "--height",
                  p.width % 8 ? p.width : p.height);
        goto usage;
    }
    if (sched && lmx_scheduler_parse(sched, &p.scheduler) != LMX_OK) goto usage_status;
    if (p.timestep_spacing && strcmp(p.timestep_spacing, "linspace") &&
        strcmp(p.timestep_spacing, "leading") && strcmp(p.timestep_spacing, "trailing")) {
        cli_error("--timestep-spacing: expected linspace, leading or trailing, got '%s'", p.timestep_spacing);
        goto usage;
    }
    if (!args_check_threads("--threads", threads)) goto usage;
    lmx_model_params mp = lmx_model_params_default();
    mp.vae_path = vae;
    mp.winograd = winograd;
    mp.allow_gaps = mp_allow_gaps;
    mp.n_threads = threads;
    if (!strcmp(precision, "fp32")) mp.precision = LMX_PREC_F32;
    else if (!strcmp(precision, "bf16")) mp.precision = LMX_PREC_BF16;
    else {
        cli_error("--precision: expected fp32 or bf16, got '%s'", precision);
        goto usage;
    }
    p.n_images = images;
    lmx_set_threads(threads);

    progress_state ps = {quiet ? 0 : isatty(2) ? 1 : 2, "denoise"};
    p.progress = on_progress;
    p.progress_user = &ps;

    /* The output names are checked before any work: a missing or read-only
     * folder, an existing file without --overwrite or a name too long for
     * the file system fails now, not after the denoising. */
    unsigned out_flags = overwrite ? LMX_OUT_OVERWRITE : 0;
    for (int i = 0; i < images; i++) {
        char *name = output_name(out, i, images);
        lmx_status cst = name ? lmx_output_check(name, out_flags) : LMX_ERR_NOMEM;
        free(name);
        if (cst != LMX_OK) {
            cli_loras_free(&ls);
            free(manual);
            return cli_fail_status(cst);
        }
        if (output_is_stream(out)) break; /* the same stream for every image */
    }

    lmx_model *m = NULL;
    lmx_ctx *ctx = NULL;
    lmx_image *imgs = calloc((size_t)images, sizeof *imgs);
    lmx_status st = imgs ? LMX_OK : LMX_ERR_NOMEM;
    double t0 = cli_now();
    if (st == LMX_OK) st = lmx_model_load(&m, model, &mp);
    rc = CLI_OK;
    if (st == LMX_OK) {
        int wm = p.compose.method == LMX_METHOD_W_SWITCH || p.compose.method == LMX_METHOD_W_COMPOSITE;
        rc = cli_loras_load(&ls, m, wm, quiet);
        p.loras = ls.uses;
        p.n_loras = ls.n;
    }
    if (st == LMX_OK && rc == CLI_OK) rc = check_size(m, &p, yes, quiet);
    double t_load = cli_now() - t0;
    if (st == LMX_OK && rc == CLI_OK) st = lmx_ctx_create(&ctx, m, NULL);
    if (st == LMX_OK && rc == CLI_OK) st = lmx_generate(ctx, &p, imgs);
    if (rc != CLI_OK) {
        /* already reported */
    } else if (st != LMX_OK) {
        rc = cli_fail_status(st);
    } else {
        if (!quiet && ls.n > 0) print_composition(imgs[0].json);
        for (int i = 0; i < images && rc == CLI_OK; i++) {
            char *name = output_name(out, i, images);
            st = name ? lmx_image_write_png(&imgs[i], name, out_flags) : LMX_ERR_NOMEM;
            if (st != LMX_OK) rc = cli_fail_status(st);
            else if (!quiet)
                fprintf(stderr, "wrote %s (%dx%d)\n", strcmp(name, "-") ? name : "standard output",
                        imgs[i].width, imgs[i].height);
            free(name);
        }
        if (!quiet && rc == CLI_OK)
            fprintf(stderr, "model load %.2f s, total %.2f s\n", t_load, cli_now() - t0);
    }
    for (int i = 0; imgs && i < images; i++) lmx_image_free(&imgs[i]);
    free(imgs);
    lmx_ctx_free(ctx);
    cli_loras_free(&ls);
    lmx_model_free(m);
    free(manual);
    return rc;
usage_status:
    fprintf(stderr, "loramix: error: %s\n", lmx_errmsg());
usage:
    cli_loras_free(&ls);
    free(manual);
    return CLI_USAGE;
}
