/*
 * test_testbed_run.c - the testbed runner and merge (src/testbed) on the
 * tiny model, without LoRAs (tb_run_opts.no_lora) and with a generation
 * hook that makes chosen jobs fail:
 *   - the ZHONG stream offset (lmx_gen_params.noise_skip): image k of one
 *     seed stream equals image k of a batch drawn from that stream;
 *   - a failed job is recorded and the run goes on, with an error status;
 *   - resume: finished jobs are skipped, a lost sidecar or a truncated PNG
 *     makes the job run again (same bytes), temporary files of killed runs
 *     are swept for this shard's jobs only;
 *   - sharding writes exactly the shard's jobs;
 *   - a folder refuses a run with other settings (the manifest);
 *   - missing LoRA files are all listed before anything runs;
 *   - merge: complete, missing, duplicate, conflicting and corrupt outputs.
 */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "testbed/testbed.h"

static char g_root[256], g_model[1024];

static int exists(const char *dir, const char *id, const char *ext) {
    char *p = tb_path(dir, id, ext);
    struct stat sb;
    int ok = p && stat(p, &sb) == 0;
    lmx_free(p);
    return ok;
}

static char *slurp(const char *dir, const char *id, const char *ext, size_t *n) {
    char *p = tb_path(dir, id, ext), *text = NULL;
    if (p && lmx_read_file(p, &text, n, 1u << 26) != LMX_OK) text = NULL;
    lmx_free(p);
    return text;
}

static void spit(const char *dir, const char *id, const char *ext, const char *data, size_t n) {
    char *p = tb_path(dir, id, ext);
    FILE *f = p ? fopen(p, "wb") : NULL;
    CHECK(f && fwrite(data, 1, n, f) == n, "write %s", p ? p : "?");
    if (f) fclose(f);
    lmx_free(p);
}

static void rm(const char *dir, const char *id, const char *ext) {
    char *p = tb_path(dir, id, ext);
    CHECK(p && unlink(p) == 0, "unlink %s", p ? p : "?");
    lmx_free(p);
}

/* ---- noise_skip --------------------------------------------------------------- */

static void test_noise_skip(void) {
    lmx_model *m = NULL;
    lmx_ctx *c = NULL;
    CHECK_OK(lmx_model_load(&m, g_model, NULL));
    if (m) CHECK_OK(lmx_ctx_create(&c, m, NULL));
    if (!c) {
        lmx_model_free(m);
        return;
    }
    lmx_gen_params p = lmx_gen_params_default();
    p.prompt = "a photo";
    p.steps = 2;
    p.width = p.height = 64;
    p.scheduler = LMX_SCHED_DPMPP_2M;
    p.seed = 111;
    p.n_images = 3;
    lmx_image batch[3], one;
    memset(batch, 0, sizeof batch);
    memset(&one, 0, sizeof one);
    CHECK_OK(lmx_generate(c, &p, batch));
    p.n_images = 1;
    for (int k = 0; k < 3; k++) {
        p.noise_skip = (uint64_t)k;
        CHECK_OK(lmx_generate(c, &p, &one));
        /* Same noise, same image. Within one level rather than bitwise: the
         * batch of 3 runs GEMMs with 3x the rows, and oneDNN's AVX2 kernels
         * block (and so round) by the row count. The other images of the
         * stream are many levels away. */
        int dmax = 999, dother = 0;
        if (one.rgb && batch[k].rgb) {
            dmax = 0;
            for (int i = 0; i < 64 * 64 * 3; i++) {
                int d = abs((int)one.rgb[i] - (int)batch[k].rgb[i]);
                int o = abs((int)one.rgb[i] - (int)batch[(k + 1) % 3].rgb[i]);
                if (d > dmax) dmax = d;
                if (o > dother) dother = o;
            }
        }
        CHECK(dmax <= 1, "noise_skip %d differs from image %d of the stream by %d levels", k, k, dmax);
        CHECK(dother > 8, "noise_skip %d is %d levels from image %d", k, dother, (k + 1) % 3);
        if (k > 0) CHECK(one.json && strstr(one.json, "\"noise_skip\":"), "noise_skip recorded");
        lmx_image_free(&one);
    }
    CHECK(batch[0].rgb && batch[1].rgb && memcmp(batch[0].rgb, batch[1].rgb, 64 * 64 * 3),
          "stream images equal?");
    for (int k = 0; k < 3; k++)
        lmx_image_free(&batch[k]);
    lmx_ctx_free(c);
    lmx_model_free(m);
}

/* ---- the runner ------------------------------------------------------------------ */

typedef struct hook {
    uint64_t fail_mask; /* bit i: job index i fails */
    int calls;
} hook;

static lmx_status gen_hook(lmx_ctx *ctx, const lmx_gen_params *p, lmx_image *img, const tb_job *job,
                           void *user) {
    hook *h = user;
    h->calls++;
    if (job->index < 64 && (h->fail_mask >> job->index & 1))
        return lmx_err(LMX_ERR_BACKEND, "injected failure of job %lld", (long long)job->index);
    return lmx_generate(ctx, p, img);
}

static tb_run_opts opts_for(const char *out, hook *h, FILE *log) {
    tb_run_opts o = tb_run_opts_default();
    o.out_dir = out;
    o.model_all = g_model;
    o.no_lora = 1;
    o.steps = 2;
    o.width = o.height = 64;
    o.threads = 1;
    o.progress = 0;
    o.log = log;
    o.generate = gen_hook;
    o.generate_user = h;
    return o;
}

static void test_runner(const tb_testbed *tb, FILE *log) {
    char out[512], out2[512];
    snprintf(out, sizeof out, "%s/a", g_root);
    snprintf(out2, sizeof out2, "%s/b", g_root);
    tb_selection sel;
    tb_selection_default(tb, &sel);
    CHECK_OK(tb_selection_methods(&sel, "merge,composite"));
    sel.limit = 8;
    tb_plan *p = NULL;
    CHECK_OK(tb_plan_build(&p, tb, &sel));
    if (!p) return;

    /* 1. Two jobs fail; the others are done; the status says so. */
    hook h = {(1u << 2) | (1u << 5), 0};
    tb_run_opts o = opts_for(out, &h, log);
    tb_run_stats s;
    lmx_status st = tb_run(p, &o, &s);
    CHECK(st == LMX_ERR_BACKEND && strstr(lmx_errmsg(), "2 of 8 jobs failed"), "status %s: %s",
          lmx_status_name(st), lmx_errmsg());
    CHECK(s.in_shard == 8 && s.done == 6 && s.failed == 2 && s.skipped == 0, "stats %lld %lld %lld",
          (long long)s.done, (long long)s.failed, (long long)s.skipped);
    for (int i = 0; i < 8; i++) {
        int want = i != 2 && i != 5;
        CHECK(tb_job_complete(out, p->jobs[i].id) == want, "job %d complete?", i);
        CHECK(exists(out, p->jobs[i].id, ".json") == want, "job %d sidecar", i);
    }
    size_t n = 0;
    char *logtext = slurp(out, "logs/shard-1-of-1", ".jsonl", &n);
    CHECK(logtext && strstr(logtext,
                            "\"event\":\"failed\",\"job\":\"anime/merge_2/character_1_clothing_1_3_seed44\""),
          "failed event logged");
    CHECK(logtext && strstr(logtext, "injected failure of job 5"), "error message logged");
    lmx_free(logtext);
    char *side = slurp(out, p->jobs[0].id, ".json", &n);
    cJSON *sj = side ? cJSON_Parse(side) : NULL;
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(sj, "job");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(job, "prompt")) &&
              cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(sj, "generation")) &&
              cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(sj, "timings")) &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sj, "loramix_version")) &&
              cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sj, "loras")) == 2,
          "sidecar fields");
    cJSON_Delete(sj);
    lmx_free(side);

    /* 2. Resume: only the two failed jobs run. */
    h.fail_mask = 0;
    h.calls = 0;
    CHECK_OK(tb_run(p, &o, &s));
    CHECK(s.done == 2 && s.skipped == 6 && s.failed == 0 && h.calls == 2,
          "resume: %lld done, %lld skipped, %d calls", (long long)s.done, (long long)s.skipped, h.calls);

    /* 3. A truncated PNG, a lost sidecar and stale temporaries. */
    size_t n0 = 0;
    char *png0 = slurp(out, p->jobs[0].id, ".png", &n0);
    CHECK(png0 && n0 > 100, "png 0");
    if (png0) spit(out, p->jobs[0].id, ".png", png0, n0 / 2);
    rm(out, p->jobs[1].id, ".json");
    /* The sweep removes a temporary file only when the PID in its name is
     * gone: a child that has exited is dead, our parent is alive. */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char tmp_mine[600], tmp_other[600], tmp_live[600];
    snprintf(tmp_mine, sizeof tmp_mine, "%s.png.tmp.%ld.0", p->jobs[3].id, (long)dead);
    snprintf(tmp_other, sizeof tmp_other, "anime/merge_2/character_9_x_1_seed1.json.tmp.77");
    snprintf(tmp_live, sizeof tmp_live, "%s.json.tmp.%ld", p->jobs[3].id, (long)getppid());
    spit(out, tmp_mine, "", "x", 1);
    spit(out, tmp_other, "", "x", 1);
    spit(out, tmp_live, "", "x", 1);
    h.calls = 0;
    CHECK_OK(tb_run(p, &o, &s));
    CHECK(s.done == 2 && s.skipped == 6 && h.calls == 2, "rerun: %lld done, %d calls", (long long)s.done,
          h.calls);
    size_t n1 = 0;
    char *png1 = slurp(out, p->jobs[0].id, ".png", &n1);
    CHECK(png0 && png1 && n0 == n1 && !memcmp(png0, png1, n0), "regenerated PNG has other bytes");
    lmx_free(png0);
    lmx_free(png1);
    CHECK(!exists(out, tmp_mine, ""), "own temporary file not swept");
    CHECK(exists(out, tmp_other, ""), "another job's temporary file was removed");
    CHECK(exists(out, tmp_live, ""), "a live writer's temporary file was removed");
    rm(out, tmp_other, "");
    rm(out, tmp_live, "");

    /* 4. Other settings in the same folder are refused, before any work. */
    tb_run_opts o3 = o;
    o3.steps = 3;
    h.calls = 0;
    st = tb_run(p, &o3, &s);
    CHECK(st == LMX_ERR_ARG && strstr(lmx_errmsg(), "other settings") && h.calls == 0,
          "settings mismatch: %s", lmx_errmsg());

    /* 5. A shard writes exactly its jobs. */
    tb_run_opts o2 = opts_for(out2, &h, log);
    o2.shard_k = 2;
    o2.shard_n = 3;
    CHECK_OK(tb_run(p, &o2, &s));
    CHECK(s.in_shard == 3 && s.done == 3, "shard 2/3: %lld jobs", (long long)s.in_shard);
    for (int i = 0; i < 8; i++)
        CHECK(tb_job_complete(out2, p->jobs[i].id) == (i % 3 == 1), "shard job %d", i);
    for (int i = 0; i < 8; i++) {
        if (i % 3 != 1) continue;
        size_t na = 0, nb = 0;
        char *a = slurp(out, p->jobs[i].id, ".png", &na), *b = slurp(out2, p->jobs[i].id, ".png", &nb);
        CHECK(a && b && na == nb && !memcmp(a, b, na), "shard job %d differs from the unsharded run", i);
        lmx_free(a);
        lmx_free(b);
    }

    /* 6. Merge. */
    const char **ids = lmx_calloc((size_t)p->n_jobs, sizeof *ids);
    for (int64_t i = 0; i < p->n_jobs; i++)
        ids[i] = p->jobs[i].id;
    tb_merge_opts mo;
    memset(&mo, 0, sizeof mo);
    const char *dirs[2] = {out, out2};
    mo.out_dirs = dirs;
    mo.n_out_dirs = 1;
    mo.verify = 1;
    mo.report = log;
    tb_merge_stats ms;
    CHECK_OK(tb_merge(ids, p->n_jobs, &mo, &ms));
    CHECK(ms.found == 8 && ms.missing == 0 && ms.duplicates == 0 && ms.extra == 0, "merge one folder");
    size_t ni = 0;
    char *index = slurp(out, "index", ".jsonl", &ni);
    int lines = 0;
    for (size_t i = 0; index && i < ni; i++)
        lines += index[i] == '\n';
    CHECK(lines == 8 && strstr(index, "\"crc32\":") && strstr(index, "\"image\":"), "index has %d lines",
          lines);
    lmx_free(index);
    mo.n_out_dirs = 2;
    CHECK_OK(tb_merge(ids, p->n_jobs, &mo, &ms));
    CHECK(ms.found == 8 && ms.duplicates == 3 && ms.conflicts == 0, "merge two folders: %lld dup",
          (long long)ms.duplicates);
    /* A PNG replaced by other bytes of the same size: a conflict (and, with
     * verify, a corrupt output). */
    size_t nx = 0;
    char *x = slurp(out2, p->jobs[1].id, ".png", &nx);
    if (x) {
        x[nx - 20] ^= 0x55;
        spit(out2, p->jobs[1].id, ".png", x, nx);
    }
    mo.verify = 0;
    CHECK(tb_merge(ids, p->n_jobs, &mo, &ms) == LMX_OK && ms.duplicates == 3,
          "same size passes without --verify");
    mo.verify = 1;
    CHECK(tb_merge(ids, p->n_jobs, &mo, &ms) == LMX_ERR_IO && ms.corrupt == 1,
          "verify finds the changed PNG");
    lmx_free(x);
    /* Missing: a sidecar removed. */
    mo.n_out_dirs = 1;
    rm(out, p->jobs[6].id, ".json");
    CHECK(tb_merge(ids, p->n_jobs, &mo, &ms) == LMX_ERR_IO && ms.missing == 1 && ms.found == 7,
          "missing: %lld", (long long)ms.missing);
    /* Extra: a sidecar of a job outside the plan. */
    char xdir[600];
    snprintf(xdir, sizeof xdir, "%s/reality/merge_5", out);
    CHECK_OK(tb_mkdirs(xdir));
    spit(out, "reality/merge_5/character_1_clothing_1_style_1_background_1_object_1_1_seed42", ".json", "{}",
         2);
    CHECK(tb_merge(ids, p->n_jobs, &mo, &ms) == LMX_ERR_IO && ms.extra == 1, "extra %lld",
          (long long)ms.extra);
    lmx_free(ids);
    tb_plan_free(p);
}

static void test_missing_loras(const tb_testbed *tb, FILE *log) {
    char out[512], loras[512], path[700];
    snprintf(out, sizeof out, "%s/c", g_root);
    snprintf(loras, sizeof loras, "%s/loras", g_root);
    snprintf(path, sizeof path, "%s/reality", loras);
    CHECK_OK(tb_mkdirs(path));
    snprintf(path, sizeof path, "%s/reality/character_1.safetensors", loras);
    CHECK_OK(lmx_write_file_atomic(path, "", 0));
    tb_selection sel;
    tb_selection_default(tb, &sel);
    CHECK_OK(tb_selection_subsets(tb, &sel, "reality"));
    CHECK_OK(tb_selection_n(tb, &sel, "2"));
    tb_plan *p = NULL;
    CHECK_OK(tb_plan_build(&p, tb, &sel));
    hook h = {0, 0};
    tb_run_opts o = opts_for(out, &h, log);
    o.no_lora = 0;
    o.lora_dir = loras;
    tb_run_stats s;
    long pos = ftell(log);
    lmx_status st = tb_run(p, &o, &s);
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), "10 of the 11 LoRA files") && h.calls == 0, "missing: %s",
          lmx_errmsg());
    fflush(log);
    fseek(log, pos, SEEK_SET);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, log);
    buf[n] = 0;
    CHECK(strstr(buf, "reality/object_2.safetensors") && strstr(buf, "reality/clothing_1.safetensors") &&
              !strstr(buf, "character_1.safetensors"),
          "the list of missing files: %s", buf);
    fseek(log, 0, SEEK_END);
    tb_plan_free(p);
}

/* The shard locks: one holder per shard, overlapping shards exclude each
 * other, disjoint ones do not; a lock dies with its holder. */
static void test_locks(FILE *log) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/locks", g_root);
    CHECK_OK(tb_mkdirs(dir));
    tb_lock a, b, c;
    CHECK_OK(tb_lock_shard(&a, dir, 1, 2, 0, log));
    lmx_status st = tb_lock_shard(&b, dir, 1, 2, 0, log);
    char want[400];
    snprintf(want, sizeof want, "%s: shard 1/2 is being run by another runner (pid %ld on ", dir, (long)getpid());
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), want), "same shard: %s", lmx_errmsg());
    CHECK(b.fd < 0 && !b.path, "a refused lock is released");
    CHECK_OK(tb_lock_shard(&b, dir, 2, 2, 0, log)); /* disjoint */
    st = tb_lock_shard(&c, dir, 1, 1, 0, log);     /* overlaps both */
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), "overlap those of shard 1/1"), "1/1 vs 1/2: %s",
          lmx_errmsg());
    st = tb_lock_shard(&c, dir, 3, 4, 0, log); /* i = 2 mod 4 is 0 mod 2: overlaps 1/2 */
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), ".lock-shard-1-of-2"), "3/4 vs 1/2: %s", lmx_errmsg());
    tb_unlock(&a);
    CHECK_OK(tb_lock_shard(&c, dir, 3, 4, 0, log)); /* 1/2 is gone; 2/2 is disjoint from 3/4 */
    tb_unlock(&c);
    tb_unlock(&b);
    /* A holder killed with SIGKILL leaves the file, not the lock. */
    pid_t child = fork();
    if (child == 0) {
        tb_lock l;
        if (tb_lock_shard(&l, dir, 1, 1, 0, NULL) != LMX_OK) _exit(1);
        for (;;)
            pause();
    }
    int held = 0;
    for (int i = 0; i < 500 && !held; i++) {
        st = tb_lock_shard(&a, dir, 1, 1, 0, log);
        held = st != LMX_OK;
        if (!held) {
            tb_unlock(&a);
            usleep(10000);
        }
    }
    CHECK(held, "the child never took the lock");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK_OK(tb_lock_shard(&a, dir, 1, 1, 0, log));
    tb_unlock(&a);
    CHECK(tb_pid_alive((long)getpid()) && !tb_pid_alive((long)child) && !tb_pid_alive(0), "tb_pid_alive");
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/lmx_tb_run_%d", (int)getpid());
    snprintf(g_model, sizeof g_model, "%s", lmx_src_path("tests/fixtures/models/tiny-sd"));
    CHECK_OK(tb_mkdirs(g_root));
    FILE *log = tmpfile();
    if (lmx_test_verbose()) log = stderr;
    test_noise_skip();
    test_locks(log);
    tb_testbed *tb = NULL;
    CHECK_OK(tb_load(&tb, NULL));
    if (tb) {
        test_runner(tb, log);
        test_missing_loras(tb, log);
    }
    tb_free(tb);
    if (log != stderr) fclose(log);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    CHECK(system(cmd) == 0, "cleanup");
    return lmx_test_finish();
}
