/*
 * tb_run.c - the testbed runner: generates the jobs of one shard of a plan,
 * resumable and safe to kill at any moment.
 *
 * Completion protocol. A job's outputs are {out}/{id}.png and its sidecar
 * {out}/{id}.json. Both are written atomically (a temporary file in the same
 * folder, fsync, rename); the PNG first, the sidecar last, and the sidecar
 * records the PNG's size and CRC-32. A job is complete when its sidecar
 * parses, names the job and the PNG has the recorded size; anything else
 * (no sidecar, a PNG without one, a stale sidecar) means "run it again",
 * which first removes the stale sidecar. Temporary files left by a killed
 * run ("<file>.tmp.<pid>[.<n>]") are removed at the next start, only for
 * jobs of the starting shard and only when no process <pid> exists, so
 * shards sharing one folder never touch each other's files and a live
 * writer's file is never pulled away. Hence kill -9 at any point loses at
 * most the job in flight and never leaves a corrupt or half-written output
 * under a final name.
 *
 * Concurrency. The runner holds its shard's lock ({out}/.lock-shard-K-of-N,
 * tb_lock.c) from before it decides which jobs are pending to its end, so a
 * second runner of the same shard (or of an overlapping one) is refused or,
 * with --wait, starts after it and finds its jobs done; different shards run
 * side by side, each with its own log, and the manifest is rewritten under
 * {out}/.lock-manifest.
 *
 * One model and one lmx_ctx per subset (the subsets have different base
 * models), reused for every job; each LoRA file is loaded once, at its
 * first use, and kept for the rest of the subset's jobs.
 *
 * Records: {out}/logs/shard-K-of-N.jsonl gets one JSON line per event
 * (run_start, lora_load, start, done, failed, run_end; UTC times, seconds), appended by
 * single write() calls; {out}/testbed-run.json (the manifest) records the
 * selection and the image-affecting settings per subset, and a run whose
 * settings differ from the manifest's is refused, so one folder never mixes
 * images made with different settings.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_util.h"
#include "testbed/testbed.h"

#define TB_MAX_SIDECAR (4u << 20)

tb_run_opts tb_run_opts_default(void) {
    tb_run_opts o;
    memset(&o, 0, sizeof o);
    o.shard_k = o.shard_n = 1;
    o.precision = LMX_PREC_F32;
    o.progress = 1;
    return o;
}

/* ---- settings of a subset --------------------------------------------------------- */

typedef struct settings {
    const char *model, *vae;
    int width, height, steps;
    float cfg, lora_scale;
    lmx_scheduler scheduler;
    const char *scheduler_name, *spacing;
    int switch_steps, tail_steps;
} settings;

static void resolve(const tb_plan *p, const tb_run_opts *o, int subset, settings *s) {
    const tb_subset *ss = &p->tb->subsets[subset];
    memset(s, 0, sizeof *s);
    s->model = o->model[subset] ? o->model[subset] : o->model_all;
    s->vae = o->vae[subset] ? o->vae[subset] : o->vae_all;
    s->width = o->width ? o->width : ss->width;
    s->height = o->height ? o->height : ss->height;
    s->steps = o->steps ? o->steps : ss->steps;
    s->cfg = o->cfg > 0 ? o->cfg : ss->cfg;
    s->lora_scale = ss->lora_scale;
    s->scheduler_name = ss->scheduler;
    if (lmx_scheduler_parse(ss->scheduler, &s->scheduler) != LMX_OK) s->scheduler = LMX_SCHED_DEFAULT;
    s->spacing = ss->timestep_spacing;
    s->switch_steps = ss->switch_steps;
    /* A --steps override below the W-Switch tail shortens the tail (the
     * tail is the last steps of the run; it cannot exceed the run). */
    s->tail_steps = LMX_MIN(ss->tail_steps, s->steps);
}

static const char *base_name(const char *path) {
    if (!path) return NULL;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *b = path + n;
    while (b > path && b[-1] != '/')
        b--;
    return b;
}

/* The image-affecting settings, as recorded in the manifest and sidecars. */
static cJSON *settings_json(const settings *s, const tb_run_opts *o) {
    cJSON *j = cJSON_CreateObject();
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s->model ? base_name(s->model) : "");
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    cJSON_AddStringToObject(j, "model", buf);
    if (s->vae)
        cJSON_AddStringToObject(j, "vae", base_name(s->vae));
    else
        cJSON_AddNullToObject(j, "vae");
    cJSON_AddNumberToObject(j, "width", s->width);
    cJSON_AddNumberToObject(j, "height", s->height);
    cJSON_AddNumberToObject(j, "steps", s->steps);
    cJSON_AddNumberToObject(j, "cfg", tb_f2d(s->cfg));
    cJSON_AddStringToObject(j, "scheduler", s->scheduler_name);
    if (s->spacing)
        cJSON_AddStringToObject(j, "timestep_spacing", s->spacing);
    else
        cJSON_AddNullToObject(j, "timestep_spacing");
    cJSON_AddNumberToObject(j, "lora_scale", tb_f2d(s->lora_scale));
    cJSON_AddNumberToObject(j, "switch_steps", s->switch_steps);
    cJSON_AddNumberToObject(j, "tail_steps", s->tail_steps);
    cJSON_AddStringToObject(j, "precision", o->precision == LMX_PREC_BF16 ? "bf16" : "fp32");
    cJSON_AddBoolToObject(j, "no_lora", o->no_lora);
    return j;
}

/* ---- a small string set (job ids of this shard) ------------------------------------- */

typedef struct strset {
    const char **v;
    size_t cap;
} strset;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static lmx_status strset_init(strset *s, size_t n) {
    s->cap = 16;
    while (s->cap < 2 * n + 1)
        s->cap *= 2;
    s->v = lmx_calloc(s->cap, sizeof *s->v);
    return s->v ? LMX_OK : lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
}

static void strset_add(strset *s, const char *k) {
    size_t n = strlen(k);
    for (size_t i = fnv1a(k, n) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->v[i]) {
            s->v[i] = k;
            return;
        }
        if (!strcmp(s->v[i], k)) return;
    }
}

static int strset_has(const strset *s, const char *k, size_t n) {
    for (size_t i = fnv1a(k, n) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->v[i]) return 0;
        if (strlen(s->v[i]) == n && !memcmp(s->v[i], k, n)) return 1;
    }
}

/* ---- completion ---------------------------------------------------------------------- */

int tb_job_complete(const char *out_dir, const char *job_id) {
    char *side = tb_path(out_dir, job_id, ".json");
    char *png = tb_path(out_dir, job_id, ".png");
    char *text = NULL;
    cJSON *j = NULL;
    int ok = 0;
    struct stat sb;
    if (!side || !png || stat(png, &sb) != 0 || !S_ISREG(sb.st_mode)) goto done;
    size_t n = 0;
    if (lmx_read_file(side, &text, &n, TB_MAX_SIDECAR) != LMX_OK) goto done;
    io_cjson_init();
    j = cJSON_ParseWithLength(text, n);
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "image");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(img, "bytes");
    ok = cJSON_IsString(id) && !strcmp(id->valuestring, job_id) && cJSON_IsNumber(bytes) &&
         bytes->valuedouble == (double)sb.st_size;
done:
    lmx_err_clear();
    cJSON_Delete(j);
    lmx_free(text);
    lmx_free(side);
    lmx_free(png);
    return ok;
}

/* ---- the runner ------------------------------------------------------------------------ */

typedef struct lora_slot {
    lmx_lora *l;
    char *error; /* the load failed: every job using it fails with this */
    int tried;
} lora_slot;

typedef struct runner {
    const tb_plan *p;
    const tb_run_opts *o;
    FILE *msg;
    int logfd;
    char *log_path;
    char shard[32];
    /* the current subset */
    int subset;
    settings set;
    lmx_model *model;
    lmx_ctx *ctx;
    char *model_error;
    lora_slot *slots;
    int n_slots;
    /* progress */
    int64_t n_pending, n_finished;
    double units_left, units_done, busy_s;
    double job_t0, job_units;
    const tb_job *job;
    int line_dirty;
    /* warnings of the job in flight */
    char **warn;
    int n_warn, cap_warn;
    /* hashes of the messages already printed (each is printed once a run) */
    uint64_t shown[64];
    int n_shown;
} runner;

static double job_units(const runner *r, const tb_job *j) {
    const tb_set *t = &r->p->sets[j->set];
    settings s;
    resolve(r->p, r->o, t->subset, &s);
    double branches = (j->method == LMX_METHOD_COMPOSITE || j->method == LMX_METHOD_W_COMPOSITE) ? t->n : 1;
    return (double)s.steps * branches * ((double)s.width * s.height / (512.0 * 512.0)) + 1e-9;
}

static void fmt_dur(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, cap, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%lds", t);
}

static void clear_line(runner *r) {
    if (r->line_dirty) {
        fputs("\r\033[K", r->msg);
        r->line_dirty = 0;
    }
}

/* ETA from the cost units (steps x UNet branches x pixels) done so far. */
static double eta_s(const runner *r, double frac_current) {
    double done = r->units_done + frac_current * r->job_units;
    double busy = r->busy_s + (r->job ? lmx_now() - r->job_t0 : 0);
    if (done <= 0 || busy <= 0.5) return -1;
    double left = r->units_left - frac_current * r->job_units;
    return left > 0 ? busy / done * left : 0;
}

static void on_step(int step, int n_steps, double elapsed, void *user) {
    runner *r = user;
    (void)elapsed;
    if (r->o->progress < 2 || !r->job || n_steps <= 0) return;
    char eta[32];
    fmt_dur(eta, sizeof eta, eta_s(r, (double)step / n_steps));
    double all = r->units_done + r->units_left;
    double pct = all > 0 ? 100.0 * (r->units_done + r->job_units * step / n_steps) / all : 0;
    fprintf(r->msg, "\r\033[K[%lld/%lld %3.0f%%] %s  step %d/%d  ETA %s", (long long)r->n_finished + 1,
            (long long)r->n_pending, pct, r->job->id, step, n_steps, eta);
    fflush(r->msg);
    r->line_dirty = 1;
}

static void on_log(lmx_log_level level, const char *msg, void *user) {
    runner *r = user;
    static const char *pre[] = {"error: ", "warning: ", "", "debug: "};
    uint64_t h = fnv1a(msg, strlen(msg));
    int seen = 0;
    for (int i = 0; i < r->n_shown && !seen; i++)
        seen = r->shown[i] == h;
    if (!seen) {
        if (r->n_shown < (int)LMX_ARRAY_LEN(r->shown)) r->shown[r->n_shown++] = h;
        clear_line(r);
        fprintf(r->msg, "loramix: %s%s%s\n", pre[level <= LMX_LOG_DEBUG ? level : 2], msg,
                r->job ? " (shown once; every job's warnings are in its sidecar)" : "");
    }
    if (r->job && level <= LMX_LOG_WARN) {
        if (r->n_warn == r->cap_warn) {
            int cap = r->cap_warn ? 2 * r->cap_warn : 4;
            char **v = lmx_realloc(r->warn, sizeof *v * (size_t)cap);
            if (!v) return;
            r->warn = v;
            r->cap_warn = cap;
        }
        r->warn[r->n_warn] = lmx_strdup(msg);
        if (r->warn[r->n_warn]) r->n_warn++;
    }
}

static void clear_warnings(runner *r) {
    for (int i = 0; i < r->n_warn; i++)
        lmx_free(r->warn[i]);
    r->n_warn = 0;
}

/* Append one JSON line to the run log (one write(): lines never interleave). */
static void log_event(runner *r, cJSON *ev) {
    char t[40];
    tb_iso_time(t, sizeof t);
    cJSON_AddStringToObject(ev, "time", t);
    cJSON_AddStringToObject(ev, "shard", r->shard);
    char *s = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    if (!s || r->logfd < 0) {
        cJSON_free(s);
        return;
    }
    size_t n = strlen(s);
    char *line = lmx_malloc(n + 2);
    if (line) {
        memcpy(line, s, n);
        line[n] = '\n';
        ssize_t w;
        do
            w = write(r->logfd, line, n + 1);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)(n + 1)) {
            clear_line(r);
            fprintf(r->msg, "loramix: warning: %s: cannot append to the run log: %s\n", r->log_path,
                    w < 0 ? strerror(errno) : "short write");
        }
        lmx_free(line);
    }
    cJSON_free(s);
}

static cJSON *job_event(const char *what, const tb_job *j) {
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "event", what);
    cJSON_AddStringToObject(ev, "job", j->id);
    cJSON_AddNumberToObject(ev, "index", (double)j->index);
    return ev;
}

static void release_subset(runner *r) {
    for (int i = 0; i < r->n_slots; i++) {
        lmx_lora_free(r->slots[i].l);
        lmx_free(r->slots[i].error);
    }
    lmx_free(r->slots);
    r->slots = NULL;
    r->n_slots = 0;
    lmx_ctx_free(r->ctx);
    r->ctx = NULL;
    lmx_model_free(r->model);
    r->model = NULL;
    lmx_free(r->model_error);
    r->model_error = NULL;
    r->subset = -1;
}

/* Make `subset` current: its model, one context, an empty LoRA cache. A
 * model that fails to load is remembered (its jobs fail with the message). */
static void enter_subset(runner *r, int subset) {
    if (r->subset == subset) return;
    release_subset(r);
    r->subset = subset;
    resolve(r->p, r->o, subset, &r->set);
    const tb_subset *ss = &r->p->tb->subsets[subset];
    r->slots = lmx_calloc((size_t)ss->n_loras, sizeof *r->slots);
    lmx_model_params mp = lmx_model_params_default();
    mp.vae_path = r->set.vae;
    mp.precision = r->o->precision;
    mp.n_threads = r->o->threads;
    double t0 = lmx_now();
    lmx_status st = r->slots ? lmx_model_load(&r->model, r->set.model, &mp) : LMX_ERR_NOMEM;
    if (st == LMX_OK) st = lmx_ctx_create(&r->ctx, r->model, NULL);
    if (st != LMX_OK) {
        r->model_error =
            tb_strdup_printf("%s: %s", r->set.model, *lmx_errmsg() ? lmx_errmsg() : lmx_status_name(st));
        clear_line(r);
        fprintf(r->msg, "loramix: error: subset %s: cannot load the model: %s\n", ss->name,
                r->model_error ? r->model_error : "out of memory");
        return;
    }
    r->n_slots = ss->n_loras;
    if (r->o->progress > 0) {
        clear_line(r);
        fprintf(r->msg, "subset %s: model %s loaded in %.1f s\n", ss->name, r->set.model, lmx_now() - t0);
    }
}

static char *lora_file(const runner *r, int subset, int lora) {
    const tb_subset *ss = &r->p->tb->subsets[subset];
    return tb_strdup_printf("%s/%s/%s.safetensors", r->o->lora_dir, ss->name, ss->loras[lora].id);
}

/* The LoRA of the current subset, loaded at its first use. */
static lmx_status get_lora(runner *r, int lora, const lmx_lora **out, double *load_s) {
    lora_slot *s = &r->slots[lora];
    if (!s->tried) {
        s->tried = 1;
        char *path = lora_file(r, r->subset, lora);
        double t0 = lmx_now();
        lmx_status st = path ? lmx_lora_load(&s->l, r->model, path) : lmx_err(LMX_ERR_NOMEM, "out of memory");
        *load_s += lmx_now() - t0;
        if (st != LMX_OK) {
            s->error = tb_strdup_printf("%s", *lmx_errmsg() ? lmx_errmsg() : lmx_status_name(st));
            s->l = NULL;
        }
        /* One event per file and run: each LoRA is loaded once. */
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "event", "lora_load");
        cJSON_AddStringToObject(ev, "subset", r->p->tb->subsets[r->subset].name);
        cJSON_AddStringToObject(ev, "lora", r->p->tb->subsets[r->subset].loras[lora].id);
        if (path) cJSON_AddStringToObject(ev, "file", path);
        cJSON_AddNumberToObject(ev, "seconds", lmx_now() - t0);
        cJSON_AddBoolToObject(ev, "ok", s->l != NULL);
        if (s->l)
            cJSON_AddNumberToObject(ev, "unmatched_keys", lmx_lora_n_unmatched(s->l));
        else
            cJSON_AddStringToObject(ev, "error", s->error ? s->error : "?");
        log_event(r, ev);
        lmx_free(path);
    }
    if (!s->l)
        return lmx_err(LMX_ERR_IO, "LoRA %s: %s", r->p->tb->subsets[r->subset].loras[lora].id,
                       s->error ? s->error : "failed to load");
    *out = s->l;
    return LMX_OK;
}

static lmx_status default_generate(lmx_ctx *ctx, const lmx_gen_params *p, lmx_image *img, const tb_job *job,
                                   void *user) {
    (void)job;
    (void)user;
    return lmx_generate(ctx, p, img);
}

static cJSON *build_sidecar(runner *r, const tb_job *job, const lmx_gen_params *gp, const lmx_image *img,
                            const char *png, uint64_t bytes, uint32_t crc, const double tm[4]) {
    const tb_plan *p = r->p;
    const tb_set *t = &p->sets[job->set];
    const tb_subset *ss = &p->tb->subsets[t->subset];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "loramix-testbed-sidecar");
    cJSON_AddNumberToObject(j, "format_version", 1);
    cJSON_AddItemToObject(j, "job", tb_job_json(p, job, NULL));
    cJSON *im = cJSON_AddObjectToObject(j, "image");
    cJSON_AddStringToObject(im, "file", base_name(png));
    cJSON_AddNumberToObject(im, "bytes", (double)bytes);
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", crc);
    cJSON_AddStringToObject(im, "crc32", hex);
    cJSON_AddNumberToObject(im, "width", img->width);
    cJSON_AddNumberToObject(im, "height", img->height);
    cJSON *ls = cJSON_AddArrayToObject(j, "loras");
    for (int i = 0; i < t->n; i++) {
        const tb_lora *l = &ss->loras[t->lora[i]];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", l->id);
        cJSON_AddStringToObject(e, "name", l->name);
        cJSON_AddStringToObject(e, "category", ss->cats[l->cat]);
        cJSON *tr = cJSON_AddArrayToObject(e, "triggers");
        for (int k = 0; k < l->n_triggers; k++)
            cJSON_AddItemToArray(tr, cJSON_CreateString(l->triggers[k]));
        if (!r->o->no_lora) {
            char *f = lora_file(r, t->subset, t->lora[i]);
            if (f) cJSON_AddStringToObject(e, "file", f);
            lmx_free(f);
        }
        cJSON_AddBoolToObject(e, "used", !r->o->no_lora);
        cJSON_AddNumberToObject(e, "unet_scale", 1.0);
        cJSON_AddNumberToObject(e, "te_scale", 1.0);
        cJSON_AddNumberToObject(e, "effective_scale", tb_f2d(gp->lora_scale));
        if (l->url) cJSON_AddStringToObject(e, "url", l->url);
        cJSON_AddItemToArray(ls, e);
    }
    cJSON_AddNumberToObject(j, "lora_scale", tb_f2d(gp->lora_scale));
    cJSON *cmp = cJSON_AddObjectToObject(j, "compose");
    cJSON_AddStringToObject(cmp, "method", lmx_method_name(gp->compose.method));
    cJSON_AddNumberToObject(cmp, "switch_steps", gp->compose.switch_steps);
    cJSON_AddNumberToObject(cmp, "tail_steps", gp->compose.tail_steps);
    cJSON_AddStringToObject(cmp, "weighting", lmx_weighting_name(gp->compose.weighting));
    cJSON *set = settings_json(&r->set, r->o);
    cJSON_ReplaceItemInObjectCaseSensitive(set, "model",
                                           cJSON_CreateString(r->set.model ? r->set.model : ""));
    if (r->set.vae) cJSON_ReplaceItemInObjectCaseSensitive(set, "vae", cJSON_CreateString(r->set.vae));
    cJSON_AddStringToObject(set, "base_model", ss->base_model);
    if (ss->vae) cJSON_AddStringToObject(set, "testbed_vae", ss->vae);
    cJSON_AddNumberToObject(set, "threads", lmx_get_threads());
    cJSON_AddItemToObject(j, "settings", set);
    /* Everything the engine records: resolved scheduler, composition
     * weights and the per-step LoRA schedule. */
    cJSON *gen = img->json ? cJSON_Parse(img->json) : NULL;
    if (gen)
        cJSON_AddItemToObject(j, "generation", gen);
    else
        cJSON_AddNullToObject(j, "generation");
    cJSON *tj = cJSON_AddObjectToObject(j, "timings");
    cJSON_AddNumberToObject(tj, "lora_load_s", tm[0]);
    cJSON_AddNumberToObject(tj, "generate_s", tm[1]);
    cJSON_AddNumberToObject(tj, "save_s", tm[2]);
    cJSON_AddNumberToObject(tj, "total_s", tm[3]);
    cJSON *w = cJSON_AddArrayToObject(j, "warnings");
    for (int i = 0; i < r->n_warn; i++)
        cJSON_AddItemToArray(w, cJSON_CreateString(r->warn[i]));
    cJSON_AddStringToObject(j, "loramix_version", lmx_version());
    cJSON *tbj = cJSON_AddObjectToObject(j, "testbed");
    cJSON_AddStringToObject(tbj, "name", p->tb->name);
    cJSON_AddStringToObject(tbj, "dir", p->tb->dir);
    cJSON_AddStringToObject(j, "shard", r->shard);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    cJSON_AddStringToObject(j, "host", host);
    char tnow[40];
    tb_iso_time(tnow, sizeof tnow);
    cJSON_AddStringToObject(j, "finished_at", tnow);
    return j;
}

/* Run one job; LMX_OK when its PNG and sidecar are in place. */
static lmx_status run_job(runner *r, const tb_job *job) {
    const tb_plan *p = r->p;
    const tb_set *t = &p->sets[job->set];
    const tb_subset *ss = &p->tb->subsets[t->subset];
    char *png = tb_path(r->o->out_dir, job->id, ".png");
    char *side = tb_path(r->o->out_dir, job->id, ".json");
    char *dir = NULL;
    lmx_image img;
    memset(&img, 0, sizeof img);
    double tm[4] = {0, 0, 0, 0};
    double t0 = lmx_now();
    lmx_status st = LMX_OK;
    cJSON *sc = NULL;
    char *text = NULL;
    if (!png || !side) {
        st = lmx_err(LMX_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (r->model_error) {
        st = lmx_err(LMX_ERR_IO, "model: %s", r->model_error);
        goto done;
    }
    /* A stale sidecar (its PNG was replaced or lost) must not outlive the rerun. */
    if (unlink(side) != 0 && errno != ENOENT) {
        st = lmx_err(LMX_ERR_IO, "%s: cannot remove the stale sidecar: %s", side, strerror(errno));
        goto done;
    }
    lmx_lora_use uses[TB_MAX_CATS];
    int n_uses = 0;
    for (int i = 0; i < t->n && !r->o->no_lora; i++) {
        const tb_lora *l = &ss->loras[t->lora[i]];
        const lmx_lora *h = NULL;
        if ((st = get_lora(r, t->lora[i], &h, &tm[0])) != LMX_OK) goto done;
        lmx_lora_use u;
        memset(&u, 0, sizeof u);
        u.lora = h;
        u.unet_scale = 1.0f;
        u.te_scale = 1.0f;
        u.name = l->id;
        u.category = l->category;
        u.triggers = (const char *const *)l->triggers;
        u.n_triggers = l->n_triggers;
        uses[n_uses++] = u;
    }
    lmx_gen_params gp = lmx_gen_params_default();
    gp.prompt = t->prompt;
    gp.negative_prompt = ss->negative_prompt;
    gp.width = r->set.width;
    gp.height = r->set.height;
    gp.steps = r->set.steps;
    gp.guidance = r->set.cfg;
    gp.seed = job->seed;
    gp.noise_skip = job->noise_skip;
    gp.n_images = 1;
    gp.scheduler = r->set.scheduler;
    gp.timestep_spacing = r->set.spacing;
    gp.loras = n_uses ? uses : NULL;
    gp.n_loras = n_uses;
    gp.lora_scale = r->set.lora_scale;
    gp.compose = lmx_compose_default();
    gp.compose.method = job->method;
    gp.compose.switch_steps = r->set.switch_steps;
    gp.compose.tail_steps = r->set.tail_steps;
    gp.progress = on_step;
    gp.progress_user = r;
    double t1 = lmx_now();
    tb_generate_fn gen = r->o->generate ? r->o->generate : default_generate;
    st = gen(r->ctx, &gp, &img, job, r->o->generate_user);
    tm[1] = lmx_now() - t1;
    if (st != LMX_OK) goto done;
    double t2 = lmx_now();
    dir = lmx_strdup(png);
    if (!dir) {
        st = lmx_err(LMX_ERR_NOMEM, "out of memory");
        goto done;
    }
    *strrchr(dir, '/') = 0;
    if ((st = tb_mkdirs(dir)) != LMX_OK) goto done;
    if ((st = lmx_image_save_png(&img, png)) != LMX_OK) goto done;
    uint32_t crc = 0;
    uint64_t bytes = 0;
    if ((st = tb_file_crc32(png, &crc, &bytes)) != LMX_OK) goto done;
    tm[2] = lmx_now() - t2;
    tm[3] = lmx_now() - t0;
    sc = build_sidecar(r, job, &gp, &img, png, bytes, crc, tm);
    text = sc ? cJSON_Print(sc) : NULL;
    if (!text) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", side);
        goto done;
    }
    st = lmx_write_file_atomic(side, text, strlen(text));
done:
    cJSON_free(text);
    cJSON_Delete(sc);
    lmx_image_free(&img);
    lmx_free(dir);
    lmx_free(png);
    lmx_free(side);
    return st;
}

/* ---- start-up checks ------------------------------------------------------------------ */

/* List every LoRA file the pending jobs need that is not a readable file. */
static lmx_status check_loras(const runner *r, const tb_job *const *pending, int64_t n) {
    const tb_plan *p = r->p;
    const tb_testbed *tb = p->tb;
    int total = 0, offs[TB_MAX_SUBSETS + 1];
    for (int s = 0; s < tb->n_subsets; s++) {
        offs[s] = total;
        total += tb->subsets[s].n_loras;
    }
    char *seen = lmx_calloc((size_t)total + 1, 1);
    if (!seen) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    int missing = 0, needed = 0;
    for (int64_t i = 0; i < n; i++) {
        const tb_set *t = &p->sets[pending[i]->set];
        for (int k = 0; k < t->n; k++) {
            int g = offs[t->subset] + t->lora[k];
            if (seen[g]) continue;
            seen[g] = 1;
            needed++;
            char *f = lora_file(r, t->subset, t->lora[k]);
            struct stat sb;
            if (!f || stat(f, &sb) != 0 || !S_ISREG(sb.st_mode)) {
                if (!missing)
                    fprintf(r->msg, "loramix: error: LoRA files missing under %s:\n", r->o->lora_dir);
                fprintf(r->msg, "  %s  (%s %s, \"%s\")\n", f ? f : "?", tb->subsets[t->subset].name,
                        tb->subsets[t->subset].loras[t->lora[k]].id,
                        tb->subsets[t->subset].loras[t->lora[k]].name);
                missing++;
            }
            lmx_free(f);
        }
    }
    lmx_free(seen);
    if (missing)
        return lmx_err(LMX_ERR_IO,
                       "%d of the %d LoRA files this run needs are missing (expected "
                       "{lora-dir}/{subset}/{id}.safetensors); nothing was run",
                       missing, needed);
    return LMX_OK;
}

/* Remove temporary files left by killed runs, for this shard's jobs only
 * (the caller holds the shard's lock) and only when the writer named in the
 * file name is gone: a process with that PID no longer exists on this host. */
static void sweep_temps(const runner *r, const tb_job *const *mine, int64_t n) {
    strset ids;
    if (strset_init(&ids, (size_t)n) != LMX_OK) return;
    for (int64_t i = 0; i < n; i++)
        strset_add(&ids, mine[i]->id);
    char *done_dirs[256];
    int n_done = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *id = mine[i]->id;
        const char *slash = strrchr(id, '/');
        size_t dl = (size_t)(slash - id);
        int seen = 0;
        for (int k = 0; k < n_done && !seen; k++)
            seen = strlen(done_dirs[k]) == dl && !memcmp(done_dirs[k], id, dl);
        if (seen || n_done == 256) continue;
        char *rel = lmx_malloc(dl + 1);
        if (!rel) break;
        memcpy(rel, id, dl);
        rel[dl] = 0;
        done_dirs[n_done++] = rel;
        char *dir = tb_path(r->o->out_dir, rel, NULL);
        DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *e;
        while (d && (e = readdir(d))) {
            const char *tmp = strstr(e->d_name, ".tmp.");
            if (!tmp) continue;
            size_t bl = (size_t)(tmp - e->d_name);
            if (bl > 4 && !memcmp(e->d_name + bl - 4, ".png", 4))
                bl -= 4;
            else if (bl > 5 && !memcmp(e->d_name + bl - 5, ".json", 5))
                bl -= 5;
            else
                continue;
            char key[1024];
            if (dl + 1 + bl >= sizeof key) continue;
            memcpy(key, rel, dl);
            key[dl] = '/';
            memcpy(key + dl + 1, e->d_name, bl);
            if (!strset_has(&ids, key, dl + 1 + bl)) continue;
            /* The writer's PID: "<file>.tmp.<pid>" or "<file>.tmp.<pid>.<n>". */
            char *end = NULL;
            errno = 0;
            long pid = strtol(tmp + 5, &end, 10);
            if (errno || pid <= 0 || end == tmp + 5 || (*end && *end != '.')) continue; /* not ours */
            char *f = tb_path(dir, e->d_name, NULL);
            /* Our own PID before we wrote anything: an earlier process that
             * had the same PID (a container's runner often has PID 1). */
            if (pid != (long)getpid() && tb_pid_alive(pid)) {
                if (f && r->o->progress > 0)
                    fprintf(r->msg, "kept %s: its writer, process %ld, is still running\n", f, pid);
            } else if (f && unlink(f) == 0 && r->o->progress > 0) {
                fprintf(r->msg, "removed %s (left by a killed run)\n", f);
            }
            lmx_free(f);
        }
        if (d) closedir(d);
        lmx_free(dir);
    }
    for (int k = 0; k < n_done; k++)
        lmx_free(done_dirs[k]);
    lmx_free(ids.v);
}

/* Read {out}/testbed-run.json, refuse differing settings, write the union. */
static lmx_status update_manifest(runner *r, const tb_job *const *mine, int64_t n) {
    const tb_plan *p = r->p;
    char *path = tb_path(r->o->out_dir, "testbed-run.json", NULL);
    char *text = NULL, *out = NULL;
    cJSON *old = NULL, *now = NULL;
    lmx_status st = LMX_OK;
    if (!path) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    struct stat sb;
    if (stat(path, &sb) == 0) {
        size_t len = 0;
        if ((st = lmx_read_file(path, &text, &len, TB_MAX_SIDECAR)) != LMX_OK) goto done;
        old = cJSON_ParseWithLength(text, len);
        if (!cJSON_IsObject(old)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: not a run manifest (remove it to start afresh)", path);
            goto done;
        }
    }
    now = cJSON_CreateObject();
    cJSON_AddStringToObject(now, "format", "loramix-testbed-run");
    cJSON_AddNumberToObject(now, "format_version", 1);
    cJSON_AddStringToObject(now, "testbed", p->tb->name);
    cJSON_AddStringToObject(now, "testbed_dir", p->tb->dir);
    cJSON_AddItemToObject(now, "selection", tb_selection_json(p->tb, &p->sel));
    cJSON *sets = cJSON_AddObjectToObject(now, "settings");
    const cJSON *old_sets = cJSON_GetObjectItemCaseSensitive(old, "settings");
    for (const cJSON *e = old_sets ? old_sets->child : NULL; e; e = e->next)
        cJSON_AddItemToObject(sets, e->string, cJSON_Duplicate(e, 1));
    for (int si = 0; si < p->sel.n_subsets; si++) {
        int s = p->sel.subsets[si];
        int used = 0;
        for (int64_t i = 0; i < n && !used; i++)
            used = p->sets[mine[i]->set].subset == s;
        if (!used) continue;
        settings set;
        resolve(p, r->o, s, &set);
        cJSON *mine_j = settings_json(&set, r->o);
        const char *name = p->tb->subsets[s].name;
        const cJSON *prev = cJSON_GetObjectItemCaseSensitive(sets, name);
        if (prev && !cJSON_Compare(prev, mine_j, 1)) {
            char *a = cJSON_PrintUnformatted(prev), *b = cJSON_PrintUnformatted(mine_j);
            st = lmx_err(LMX_ERR_ARG,
                         "%s: subset %s was run here with other settings:\n  before: %s\n  now:    %s\n"
                         "use another --out folder (or remove the folder's outputs and manifest)",
                         path, name, a ? a : "?", b ? b : "?");
            cJSON_free(a);
            cJSON_free(b);
            cJSON_Delete(mine_j);
            goto done;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(sets, name);
        cJSON_AddItemToObject(sets, name, mine_j);
    }
    out = cJSON_Print(now);
    if (!out) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (!old || !cJSON_Compare(old, now, 1)) st = lmx_write_file_atomic(path, out, strlen(out));
done:
    cJSON_free(out);
    cJSON_Delete(old);
    cJSON_Delete(now);
    lmx_free(text);
    lmx_free(path);
    return st;
}

/* ---- tb_run ----------------------------------------------------------------------------- */

lmx_status tb_run(const tb_plan *p, const tb_run_opts *o, tb_run_stats *stats) {
    runner r;
    memset(&r, 0, sizeof r);
    memset(stats, 0, sizeof *stats);
    r.p = p;
    r.o = o;
    r.msg = o->log ? o->log : stderr;
    r.logfd = -1;
    r.subset = -1;
    tb_lock shard_lock;
    tb_lock_init(&shard_lock);
    snprintf(r.shard, sizeof r.shard, "%d/%d", o->shard_k, o->shard_n);
    io_cjson_init();
    lmx_status st = LMX_OK, first_fail = LMX_OK;
    const tb_job **mine = NULL, **pending = NULL;
    int64_t n_mine = 0, n_pending = 0;
    double t_run = lmx_now();

    if (!o->out_dir) return lmx_err(LMX_ERR_ARG, "--out: required");
    if (o->shard_n < 1 || o->shard_k < 1 || o->shard_k > o->shard_n)
        return lmx_err(LMX_ERR_ARG, "--shard: expected K/N with 1 <= K <= N, got %d/%d", o->shard_k,
                       o->shard_n);
    if (!o->no_lora && !o->lora_dir) return lmx_err(LMX_ERR_ARG, "--lora-dir: required (or --no-lora)");
    mine = lmx_calloc((size_t)(p->n_jobs ? p->n_jobs : 1), sizeof *mine);
    pending = lmx_calloc((size_t)(p->n_jobs ? p->n_jobs : 1), sizeof *pending);
    if (!mine || !pending) {
        st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < p->n_jobs; i++)
        if (tb_in_shard(p->jobs[i].index, o->shard_k, o->shard_n)) mine[n_mine++] = &p->jobs[i];
    stats->in_shard = n_mine;

    /* Models: every subset with jobs here needs one. */
    for (int si = 0; si < p->sel.n_subsets; si++) {
        int s = p->sel.subsets[si], used = 0;
        for (int64_t i = 0; i < n_mine && !used; i++)
            used = p->sets[mine[i]->set].subset == s;
        settings set;
        resolve(p, o, s, &set);
        if (!used) continue;
        struct stat sb;
        if (!set.model) {
            st = lmx_err(LMX_ERR_ARG,
                         "--model: no model for subset %s (--model PATH or --model %s=PATH; the "
                         "testbed uses %s)",
                         p->tb->subsets[s].name, p->tb->subsets[s].name, p->tb->subsets[s].base_model);
            goto done;
        }
        if (stat(set.model, &sb) != 0) {
            st = lmx_err(LMX_ERR_IO, "--model: %s: %s", set.model, strerror(errno));
            goto done;
        }
        if (set.vae && stat(set.vae, &sb) != 0) {
            st = lmx_err(LMX_ERR_IO, "--vae: %s: %s", set.vae, strerror(errno));
            goto done;
        }
        if (!set.vae && p->tb->subsets[s].vae)
            fprintf(r.msg,
                    "loramix: warning: subset %s: the testbed replaces the VAE with %s; running with the "
                    "model's own (pass --vae %s=PATH)\n",
                    p->tb->subsets[s].name, p->tb->subsets[s].vae, p->tb->subsets[s].name);
    }

    for (int64_t i = 0; i < n_mine; i++) {
        if (tb_job_complete(o->out_dir, mine[i]->id))
            stats->skipped++;
        else
            pending[n_pending++] = mine[i];
    }
    if (!o->no_lora && (st = check_loras(&r, pending, n_pending)) != LMX_OK) goto done;
    if ((st = tb_mkdirs(o->out_dir)) != LMX_OK) goto done;
    /* The shard's lock, held to the end: no other runner computes these jobs. */
    if ((st = tb_lock_shard(&shard_lock, o->out_dir, o->shard_k, o->shard_n, o->wait, r.msg)) != LMX_OK)
        goto done;
    /* Jobs finished by a runner that held the lock before us are done. */
    int64_t still = 0;
    for (int64_t i = 0; i < n_pending; i++) {
        if (tb_job_complete(o->out_dir, pending[i]->id))
            stats->skipped++;
        else
            pending[still++] = pending[i];
    }
    n_pending = still;
    tb_lock manifest_lock;
    if ((st = tb_lock_manifest(&manifest_lock, o->out_dir)) != LMX_OK) goto done;
    st = update_manifest(&r, mine, n_mine);
    tb_unlock(&manifest_lock);
    if (st != LMX_OK) goto done;
    sweep_temps(&r, mine, n_mine);

    /* The run log. */
    char *logdir = tb_path(o->out_dir, "logs", NULL);
    if (!logdir || (st = tb_mkdirs(logdir)) != LMX_OK) {
        lmx_free(logdir);
        if (st == LMX_OK) st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
        goto done;
    }
    r.log_path = tb_strdup_printf("%s/shard-%d-of-%d.jsonl", logdir, o->shard_k, o->shard_n);
    lmx_free(logdir);
    r.logfd = r.log_path ? open(r.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666) : -1;
    if (r.logfd < 0) {
        st = lmx_err(LMX_ERR_IO, "%s: cannot open the run log: %s", r.log_path ? r.log_path : "logs",
                     strerror(errno));
        goto done;
    }
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "event", "run_start");
    cJSON_AddNumberToObject(ev, "jobs_in_shard", (double)n_mine);
    cJSON_AddNumberToObject(ev, "already_done", (double)stats->skipped);
    cJSON_AddNumberToObject(ev, "pending", (double)n_pending);
    cJSON_AddNumberToObject(ev, "pid", (double)getpid());
    cJSON_AddStringToObject(ev, "version", lmx_version());
    log_event(&r, ev);

    if (o->progress > 0)
        fprintf(r.msg, "shard %s: %lld jobs, %lld already done, %lld to run\n", r.shard, (long long)n_mine,
                (long long)stats->skipped, (long long)n_pending);
    r.n_pending = n_pending;
    for (int64_t i = 0; i < n_pending; i++)
        r.units_left += job_units(&r, pending[i]);
    lmx_set_threads(o->threads);
    lmx_log_set(LMX_LOG_WARN, on_log, &r);

    for (int64_t i = 0; i < n_pending; i++) {
        const tb_job *job = pending[i];
        enter_subset(&r, p->sets[job->set].subset);
        log_event(&r, job_event("start", job));
        r.job = job;
        r.job_t0 = lmx_now();
        r.job_units = job_units(&r, job);
        clear_warnings(&r);
        lmx_status js = run_job(&r, job);
        double secs = lmx_now() - r.job_t0;
        r.job = NULL;
        r.busy_s += secs;
        r.units_done += r.job_units;
        r.units_left -= r.job_units;
        r.n_finished++;
        clear_line(&r);
        ev = job_event(js == LMX_OK ? "done" : "failed", job);
        cJSON_AddNumberToObject(ev, "seconds", secs);
        if (js != LMX_OK) {
            const char *msg = *lmx_errmsg() ? lmx_errmsg() : lmx_status_name(js);
            cJSON_AddStringToObject(ev, "error", msg);
            cJSON_AddStringToObject(ev, "status", lmx_status_name(js));
            fprintf(r.msg, "loramix: error: job %s failed: %s\n", job->id, msg);
            stats->failed++;
            if (first_fail == LMX_OK) first_fail = js;
        } else {
            stats->done++;
        }
        log_event(&r, ev);
        if (o->progress == 1 || (o->progress == 2 && js == LMX_OK && i + 1 == n_pending)) {
            char eta[32];
            fmt_dur(eta, sizeof eta, r.units_left > 0 ? eta_s(&r, 0) : 0);
            fprintf(r.msg, "[%lld/%lld] %s %s (%.1f s)  ETA %s\n", (long long)r.n_finished,
                    (long long)n_pending, js == LMX_OK ? "done" : "FAILED", job->id, secs, eta);
        }
        fflush(r.msg);
    }
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "event", "run_end");
    cJSON_AddNumberToObject(ev, "done", (double)stats->done);
    cJSON_AddNumberToObject(ev, "failed", (double)stats->failed);
    cJSON_AddNumberToObject(ev, "skipped", (double)stats->skipped);
    cJSON_AddNumberToObject(ev, "seconds", lmx_now() - t_run);
    log_event(&r, ev);
    if (o->progress > 0 || stats->failed)
        fprintf(r.msg, "shard %s: %lld done now, %lld already done, %lld failed of %lld (%.1f s; log %s)\n",
                r.shard, (long long)stats->done, (long long)stats->skipped, (long long)stats->failed,
                (long long)n_mine, lmx_now() - t_run, r.log_path);
    st = first_fail;
    if (st != LMX_OK)
        lmx_err(st, "%lld of %lld jobs failed (listed in %s)", (long long)stats->failed, (long long)n_pending,
                r.log_path);
done:
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    clear_line(&r);
    release_subset(&r);
    clear_warnings(&r);
    lmx_free(r.warn);
    if (r.logfd >= 0) close(r.logfd);
    tb_unlock(&shard_lock);
    lmx_free(r.log_path);
    lmx_free(mine);
    lmx_free(pending);
    return st;
}
