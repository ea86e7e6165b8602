/*
 * cmd_testbed.c - `loramix testbed plan|run|merge`: the ComposLoRA
 * multi-LoRA composition testbed (docs/testbed.md) as a resumable,
 * shardable benchmark. Thin: flags -> src/testbed (testbed.h has the job
 * order, naming and sharding rules; docs/testbed.md the recipes).
 */
#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "testbed/testbed.h"

static const char HELP[] =
    "usage: loramix testbed plan|run|merge [options]\n"
    "\n"
    "The ComposLoRA multi-LoRA composition testbed (Zhong et al. 2024): 2 subsets\n"
    "(anime, reality) x 11 LoRAs, every composition of one character LoRA with 1-4\n"
    "LoRAs of other categories: 24/72/96/48 sets for N = 2/3/4/5 per subset, 480 in\n"
    "all, each generated with every chosen method and seed.\n"
    "\n"
    "  loramix testbed plan   print the jobs (JSON lines) and a summary\n"
    "  loramix testbed run    generate them: resumable, shardable, kill-safe\n"
    "  loramix testbed merge  collect shard outputs into one index; list what is missing\n"
    "\n"
    "  loramix testbed <command> --help   explains the command's options\n"
    "  docs/testbed.md                    job order, naming, Slurm and Kubernetes recipes\n";

static const char SELECT_HELP[] =
    "which jobs (the same flags for plan, run and merge; every shard of a run\n"
    "must get the same ones):\n"
    "      --subset S         anime, reality or both (default both; a list works)\n"
    "      --methods LIST     merge,switch,composite,w-switch,w-composite or all\n"
    "                         (default all)\n"
    "      --protocol P       seed protocol: wpaper (default: seeds 42,43,44, a fresh\n"
    "                         generator per image) or zhong (seed 111, set k takes the\n"
    "                         k-th draw of one stream per subset, method and N)\n"
    "      --seeds LIST       override the protocol's seeds; image j of a set uses the\n"
    "                         j-th seed and is named ..._{j}_seed{seed}.png\n"
    "      --n LIST           only these set sizes (default 2,3,4,5)\n"
    "      --limit L          only the first L jobs of the plan order (L >= 1; 0 is\n"
    "                         refused: leave --limit out for the whole plan)\n"
    "      --testbed-dir DIR  a custom testbed definition (testbed.json and its\n"
    "                         lora_info files) instead of the bundled one\n"
    "\n"
    "job order: subset, N, set (docs/testbed.md section 5), method, seed (innermost).\n";

static const char PLAN_HELP[] =
    "usage: loramix testbed plan [options]\n"
    "\n"
    "Print the testbed's jobs in run order, one JSON object per line: index, id,\n"
    "subset, n, set, loras, method, seed, j, protocol, noise_skip, prompt,\n"
    "negative_prompt and (with --out) output. A summary with the set and job\n"
    "counts per subset and N goes to stderr.\n"
    "\n"
    "      --sets             print the composition sets instead of the jobs, one per\n"
    "                         line in plan order: subset, n, set, loras, slug, jobs\n"
    "                         (how many of the selected jobs use it), prompt; only\n"
    "                         sets with a job in the selection (--limit, --shard)\n"
    "      --out DIR          add each job's output path under DIR\n"
    "      --shard K/N        only the jobs of shard K of N (index mod N == K-1)\n"
    "      --format F         jsonl (default) or tsv (index, id, subset, n, set,\n"
    "                         loras, method, seed, j, noise_skip, prompt; with\n"
    "                         --sets: subset, n, set, loras, jobs, prompt)\n"
    "      --summary          print only the summary, to stdout (its table counts\n"
    "                         the sets per subset and N; --sets is then ignored)\n"
    "  -q, --quiet            no summary on stderr\n"
    "\n";

static const char RUN_HELP[] =
    "usage: loramix testbed run --model PATH --lora-dir DIR --out DIR [options]\n"
    "\n"
    "Generate the jobs of the plan (or of one shard of it). Each image is\n"
    "{out}/{subset}/{method}_{N}/{id1}_..._{idN}_{j}_seed{seed}.png with a JSON\n"
    "sidecar next to it (prompt, seed, LoRAs and scales, settings, the engine's\n"
    "composition weights and schedule, timings, version). Finished jobs are\n"
    "skipped, so running the same command again resumes; files are written\n"
    "atomically and the sidecar last, so kill -9 at any moment loses at most the\n"
    "job in flight. A failed job is logged and the run goes on (exit status 1 at\n"
    "the end). Run log: {out}/logs/shard-K-of-N.jsonl. One runner per shard and\n"
    "folder: the run holds the lock {out}/.lock-shard-K-of-N (dropped when the\n"
    "process ends, kill -9 included); a second runner of that shard is refused.\n"
    "\n"
    "models and LoRAs:\n"
    "  -m, --model [S=]PATH   the base model, for every subset or for subset S\n"
    "                         (repeat: --model anime=Counterfeit-V2.5 --model\n"
    "                         reality=Realistic_Vision_V5.1_noVAE)\n"
    "      --vae [S=]PATH     replace the VAE (reality: stabilityai/sd-vae-ft-mse)\n"
    "      --lora-dir DIR     LoRA files as DIR/{subset}/{id}.safetensors (the layout\n"
    "                         of the authors' ComposLoRA.zip lora/ folder); every\n"
    "                         missing file is listed before anything runs\n"
    "      --no-lora          generate without loading LoRAs (smoke tests, baselines)\n"
    "\n"
    "where and which part:\n"
    "  -o, --out DIR          output folder (shards may share it)\n"
    "      --shard K/N        run only shard K of N: jobs with index mod N == K-1\n"
    "      --wait             when another runner holds this shard of --out (or an\n"
    "                         overlapping one), wait for it to end, then run what is\n"
    "                         left; without it the run stops at once (exit status 1)\n"
    "\n"
    "overrides of the testbed settings (for tests and quick looks):\n"
    "      --steps N  --width N  --height N  --cfg G\n"
    "      --threads N        compute threads (default 0: all cores; more than the\n"
    "                         online cores warns, more than 4 per core is refused)\n"
    "      --precision P      fp32 (default) or bf16\n"
    "  -q, --quiet            no progress (errors are still printed)\n"
    "\n";

static const char MERGE_HELP[] =
    "usage: loramix testbed merge --out DIR [--out DIR2 ...] [options]\n"
    "\n"
    "Collect the outputs of one or several output folders (shards on shared\n"
    "storage, or folders copied from several machines) into one index, JSON lines\n"
    "in plan order, and report missing jobs, duplicates (complete in several\n"
    "folders: identical, or conflicting when the images differ), corrupt outputs\n"
    "and extra files. Exit status 0 only when every job is complete.\n"
    "The expected jobs come from --plan, else from the selection flags, else from\n"
    "the selection recorded by the last run in the first folder.\n"
    "\n"
    "  -o, --out DIR          an output folder (repeatable)\n"
    "      --plan FILE        the expected jobs: the output of 'loramix testbed plan'\n"
    "      --index FILE       where to write the index (default {first out}/index.jsonl)\n"
    "      --verify           also check every PNG's CRC-32 against its sidecar\n"
    "  -q, --quiet            only the summary line\n"
    "\n";

/* The selection flags shared by the three commands. */
typedef struct sel_flags {
    const char *subset, *methods, *seeds, *protocol, *n, *testbed_dir;
    int limit;
} sel_flags;

/* f->limit: -1 when --limit is not given (callers set it before parsing). */
static int sel_given(const sel_flags *f) {
    return f->subset || f->methods || f->seeds || f->protocol || f->n || f->limit >= 0;
}

static int make_selection(const tb_testbed *tb, const sel_flags *f, tb_selection *sel) {
    tb_selection_default(tb, sel);
    lmx_status st = LMX_OK;
    if (f->protocol) st = tb_selection_set_protocol(tb, sel, f->protocol);
    if (st == LMX_OK && f->subset) st = tb_selection_subsets(tb, sel, f->subset);
    if (st == LMX_OK && f->methods) st = tb_selection_methods(sel, f->methods);
    if (st == LMX_OK && f->seeds) st = tb_selection_seeds(sel, f->seeds);
    if (st == LMX_OK && f->n) st = tb_selection_n(tb, sel, f->n);
    if (st != LMX_OK) return cli_fail_status(st);
    if (f->limit == 0) {
        /* 0 used to mean "no limit": a --limit $N that came out 0 ran everything. */
        cli_error("--limit: 0 selects no jobs; give L >= 1 for the first L jobs of the plan, or leave "
                  "--limit out for the whole plan");
        return CLI_USAGE;
    }
    sel->limit = f->limit > 0 ? f->limit : 0;
    return CLI_OK;
}

static int load_testbed(const sel_flags *f, tb_testbed **tb) {
    lmx_status st = tb_load(tb, f->testbed_dir);
    return st == LMX_OK ? CLI_OK : cli_fail_status(st);
}

#define SELECT_OPTS(f)                                                                                    \
    {"--subset", NULL, ARG_STR, &(f).subset, 0, 0}, {"--methods", NULL, ARG_STR, &(f).methods, 0, 0},     \
        {"--seeds", NULL, ARG_STR, &(f).seeds, 0, 0}, {"--protocol", NULL, ARG_STR, &(f).protocol, 0, 0}, \
        {"--n", NULL, ARG_STR, &(f).n, 0, 0}, {"--limit", NULL, ARG_INT, &(f).limit, 0, 1000000000}, {    \
        "--testbed-dir", NULL, ARG_STR, &(f).testbed_dir, 0, 0                                            \
    }

/* ---- plan ------------------------------------------------------------------ */

/* --sets: the composition sets that the shard's jobs use, in plan order. */
static int print_sets(const tb_plan *p, int sk, int sn, int tsv) {
    int64_t *uses = calloc((size_t)(p->n_sets ? p->n_sets : 1), sizeof *uses);
    if (!uses) return cli_fail_status(lmx_err(LMX_ERR_NOMEM, "plan: out of memory"));
    for (int64_t i = 0; i < p->n_jobs; i++)
        if (tb_in_shard(p->jobs[i].index, sk, sn)) uses[p->jobs[i].set]++;
    int rc = CLI_OK;
    for (int k = 0; k < p->n_sets && rc == CLI_OK; k++) {
        if (!uses[k]) continue;
        const tb_set *t = &p->sets[k];
        if (tsv) {
            const tb_subset *s = &p->tb->subsets[t->subset];
            printf("%s\t%d\t%d\t", s->name, t->n, t->index);
            for (int l = 0; l < t->n; l++)
                printf("%s%s", l ? "," : "", s->loras[t->lora[l]].id);
            printf("\t%lld\t%s\n", (long long)uses[k], t->prompt);
            continue;
        }
        cJSON *o = tb_set_json(p, k, uses[k]);
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!s)
            rc = cli_fail_status(lmx_err(LMX_ERR_NOMEM, "plan: out of memory"));
        else
            puts(s);
        cJSON_free(s);
    }
    free(uses);
    return rc;
}

static int cmd_plan(int argc, char **argv) {
    sel_flags f;
    memset(&f, 0, sizeof f);
    f.limit = -1;
    const char *out = NULL, *shard = NULL, *format = "jsonl";
    int help = 0, summary = 0, quiet = 0, sets = 0;
    const arg_opt opts[] = {
        SELECT_OPTS(f),
        {"--sets", NULL, ARG_FLAG, &sets, 0, 0},
        {"--out", "-o", ARG_STR, &out, 0, 0},
        {"--shard", NULL, ARG_STR, &shard, 0, 0},
        {"--format", NULL, ARG_STR, &format, 0, 0},
        {"--summary", NULL, ARG_FLAG, &summary, 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0},
    };
    int rc = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, &help);
    if (rc) return rc;
    if (help) {
        fputs(PLAN_HELP, stdout);
        fputs(SELECT_HELP, stdout);
        return CLI_OK;
    }
    if (strcmp(format, "jsonl") && strcmp(format, "tsv")) {
        cli_error("--format: expected jsonl or tsv, got '%s'", format);
        return CLI_USAGE;
    }
    int sk = 1, sn = 1;
    if (shard && tb_shard_parse(shard, &sk, &sn) != LMX_OK) return cli_fail_status(LMX_ERR_ARG);
    tb_testbed *tb = NULL;
    tb_plan *p = NULL;
    tb_selection sel;
    if ((rc = load_testbed(&f, &tb)) != CLI_OK) return rc;
    if ((rc = make_selection(tb, &f, &sel)) != CLI_OK) goto done;
    lmx_status st = tb_plan_build(&p, tb, &sel);
    if (st != LMX_OK) {
        rc = cli_fail_status(st);
        goto done;
    }
    if (summary) {
        tb_plan_summary(p, sk, sn, stdout);
        goto done;
    }
    if (sets) {
        rc = print_sets(p, sk, sn, !strcmp(format, "tsv"));
        if (rc != CLI_OK) goto done;
    }
    for (int64_t i = 0; i < p->n_jobs && !sets; i++) {
        const tb_job *j = &p->jobs[i];
        if (!tb_in_shard(j->index, sk, sn)) continue;
        if (!strcmp(format, "tsv")) {
            const tb_set *t = &p->sets[j->set];
            const tb_subset *s = &tb->subsets[t->subset];
            printf("%lld\t%s\t%s\t%d\t%d\t", (long long)j->index, j->id, s->name, t->n, t->index);
            for (int k = 0; k < t->n; k++)
                printf("%s%s", k ? "," : "", s->loras[t->lora[k]].id);
            printf("\t%s\t%llu\t%d\t%llu\t%s\n", lmx_method_name(j->method), (unsigned long long)j->seed,
                   j->j, (unsigned long long)j->noise_skip, t->prompt);
            continue;
        }
        cJSON *o = tb_job_json(p, j, out);
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!s) {
            rc = cli_fail_status(lmx_err(LMX_ERR_NOMEM, "plan: out of memory"));
            goto done;
        }
        puts(s);
        cJSON_free(s);
    }
    if (fflush(stdout) != 0) {
        cli_error("plan: cannot write the output");
        rc = CLI_FAIL;
    }
    if (!quiet) tb_plan_summary(p, sk, sn, stderr);
done:
    tb_plan_free(p);
    tb_free(tb);
    return rc;
}

/* ---- run ------------------------------------------------------------------- */

/* "--model anime=PATH" or "--model PATH". */
static int per_subset(const tb_testbed *tb, const char *flag, const arg_list *vals, const char **all,
                      const char **per) {
    for (int i = 0; i < vals->n; i++) {
        const char *v = vals->items[i], *eq = strchr(v, '=');
        int s = -1;
        if (eq) {
            char name[64];
            size_t n = (size_t)(eq - v);
            if (n < sizeof name) {
                memcpy(name, v, n);
                name[n] = 0;
                s = tb_subset_find(tb, name);
            }
        }
        if (s >= 0) {
            if (per[s]) {
                cli_error("%s: subset %s given twice", flag, tb->subsets[s].name);
                return CLI_USAGE;
            }
            per[s] = eq + 1;
        } else {
            if (*all) {
                cli_error("%s: given twice without a subset (use %s anime=PATH --model reality=PATH)", flag,
                          flag);
                return CLI_USAGE;
            }
            *all = v;
        }
    }
    return CLI_OK;
}

static int cmd_run(int argc, char **argv) {
    sel_flags f;
    memset(&f, 0, sizeof f);
    f.limit = -1;
    arg_list models = {0}, vaes = {0};
    const char *shard = NULL, *precision = "fp32";
    int help = 0, quiet = 0;
    tb_run_opts o = tb_run_opts_default();
    const arg_opt opts[] = {
        SELECT_OPTS(f),
        {"--model", "-m", ARG_MULTI, &models, 0, 0},
        {"--vae", NULL, ARG_MULTI, &vaes, 0, 0},
        {"--lora-dir", NULL, ARG_STR, &o.lora_dir, 0, 0},
        {"--no-lora", NULL, ARG_FLAG, &o.no_lora, 0, 0},
        {"--out", "-o", ARG_STR, &o.out_dir, 0, 0},
        {"--shard", NULL, ARG_STR, &shard, 0, 0},
        {"--wait", NULL, ARG_FLAG, &o.wait, 0, 0},
        {"--steps", NULL, ARG_INT, &o.steps, 1, 10000},
        {"--width", "-W", ARG_INT, &o.width, 8, 8192},
        {"--height", "-H", ARG_INT, &o.height, 8, 8192},
        {"--cfg", NULL, ARG_FLOAT, &o.cfg, 0, 100},
        {"--threads", NULL, ARG_INT, &o.threads, 0, 1024},
        {"--precision", NULL, ARG_STR, &precision, 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0},
    };
    tb_testbed *tb = NULL;
    tb_plan *p = NULL;
    int rc = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, &help);
    if (rc) goto done;
    if (help) {
        fputs(RUN_HELP, stdout);
        fputs(SELECT_HELP, stdout);
        goto done;
    }
    if (!o.out_dir) {
        cli_error("testbed run: --out is required (see loramix testbed run --help)");
        rc = CLI_USAGE;
        goto done;
    }
    if (!models.n) {
        cli_error("testbed run: --model is required (see loramix testbed run --help)");
        rc = CLI_USAGE;
        goto done;
    }
    if (!o.lora_dir && !o.no_lora) {
        cli_error("testbed run: --lora-dir is required (or --no-lora; see loramix testbed run --help)");
        rc = CLI_USAGE;
        goto done;
    }
    if ((o.width && o.width % 8) || (o.height && o.height % 8)) {
        cli_error("testbed run: --width and --height must be multiples of 8");
        rc = CLI_USAGE;
        goto done;
    }
    if (!args_check_threads("--threads", o.threads)) {
        rc = CLI_USAGE;
        goto done;
    }
    if (!strcmp(precision, "bf16"))
        o.precision = LMX_PREC_BF16;
    else if (strcmp(precision, "fp32")) {
        cli_error("--precision: expected fp32 or bf16, got '%s'", precision);
        rc = CLI_USAGE;
        goto done;
    }
    if (shard && tb_shard_parse(shard, &o.shard_k, &o.shard_n) != LMX_OK) {
        rc = cli_fail_status(LMX_ERR_ARG);
        goto done;
    }
    if ((rc = load_testbed(&f, &tb)) != CLI_OK) goto done;
    if ((rc = per_subset(tb, "--model", &models, &o.model_all, o.model)) != CLI_OK) goto done;
    if ((rc = per_subset(tb, "--vae", &vaes, &o.vae_all, o.vae)) != CLI_OK) goto done;
    tb_selection sel;
    if ((rc = make_selection(tb, &f, &sel)) != CLI_OK) goto done;
    lmx_status st = tb_plan_build(&p, tb, &sel);
    if (st != LMX_OK) {
        rc = cli_fail_status(st);
        goto done;
    }
    o.progress = quiet ? 0 : (isatty(2) ? 2 : 1);
    o.log = stderr;
    tb_run_stats stats;
    st = tb_run(p, &o, &stats);
    if (st != LMX_OK) rc = cli_fail_status(st);
done:
    tb_plan_free(p);
    tb_free(tb);
    arg_list_free(&models);
    arg_list_free(&vaes);
    return rc;
}

/* ---- merge ----------------------------------------------------------------- */

/* Read the "id" of every line of a plan file (the output of testbed plan). */
static lmx_status read_plan_ids(const char *path, char ***ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return lmx_err(LMX_ERR_IO, "--plan: %s: cannot open", path);
    lmx_status st = LMX_OK;
    char *line = NULL;
    size_t cap = 0;
    int64_t cap_ids = 0, lineno = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len) continue;
        cJSON *j = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (!cJSON_IsString(id)) {
            cJSON_Delete(j);
            st = lmx_err(LMX_ERR_FORMAT, "--plan: %s:%lld: not a job line (a JSON object with an \"id\")",
                         path, (long long)lineno);
            break;
        }
        if (*n == cap_ids) {
            int64_t nc = cap_ids ? 2 * cap_ids : 1024;
            char **v = realloc(*ids, sizeof *v * (size_t)nc);
            if (!v) {
                cJSON_Delete(j);
                st = lmx_err(LMX_ERR_NOMEM, "--plan: out of memory");
                break;
            }
            *ids = v;
            cap_ids = nc;
        }
        (*ids)[(*n)++] = strdup(id->valuestring);
        cJSON_Delete(j);
    }
    free(line);
    fclose(fp);
    return st;
}

static int cmd_merge(int argc, char **argv) {
    sel_flags f;
    memset(&f, 0, sizeof f);
    f.limit = -1;
    arg_list outs = {0};
    const char *plan_file = NULL, *index = NULL;
    int help = 0, verify = 0, quiet = 0;
    const arg_opt opts[] = {
        SELECT_OPTS(f),
        {"--out", "-o", ARG_MULTI, &outs, 0, 0},
        {"--plan", NULL, ARG_STR, &plan_file, 0, 0},
        {"--index", NULL, ARG_STR, &index, 0, 0},
        {"--verify", NULL, ARG_FLAG, &verify, 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0},
    };
    tb_testbed *tb = NULL;
    tb_plan *p = NULL;
    char **ids = NULL;
    int64_t n_ids = 0;
    char *manifest = NULL;
    cJSON *mj = NULL;
    int owned_ids = 0;
    lmx_status st = LMX_OK;
    int rc = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, &help);
    if (rc) goto done;
    if (help) {
        fputs(MERGE_HELP, stdout);
        fputs(SELECT_HELP, stdout);
        goto done;
    }
    if (!outs.n) {
        cli_error("testbed merge: --out is required (see loramix testbed merge --help)");
        rc = CLI_USAGE;
        goto done;
    }
    if (plan_file && sel_given(&f)) {
        cli_error("testbed merge: --plan and the selection flags exclude each other");
        rc = CLI_USAGE;
        goto done;
    }
    if (plan_file) {
        if ((st = read_plan_ids(plan_file, &ids, &n_ids)) != LMX_OK) {
            rc = cli_fail_status(st);
            goto done;
        }
        owned_ids = 1;
    } else {
        if ((rc = load_testbed(&f, &tb)) != CLI_OK) goto done;
        tb_selection sel;
        if (sel_given(&f)) {
            if ((rc = make_selection(tb, &f, &sel)) != CLI_OK) goto done;
        } else {
            /* The selection the last run in the first folder recorded. */
            size_t len = 0;
            manifest = malloc(strlen(outs.items[0]) + 32);
            if (manifest) sprintf(manifest, "%s/testbed-run.json", outs.items[0]);
            char *text = NULL;
            st = manifest ? lmx_read_file(manifest, &text, &len, 1u << 24) : LMX_ERR_NOMEM;
            if (st == LMX_OK) {
                mj = cJSON_ParseWithLength(text, len);
                st = tb_selection_from_json(tb, cJSON_GetObjectItemCaseSensitive(mj, "selection"), &sel);
                if (st != LMX_OK) lmx_err_prefix("%s: ", manifest);
            } else {
                lmx_err_prefix("no --plan and no selection flags, and ");
            }
            lmx_free(text);
            if (st != LMX_OK) {
                rc = cli_fail_status(st);
                goto done;
            }
        }
        if ((st = tb_plan_build(&p, tb, &sel)) != LMX_OK) {
            rc = cli_fail_status(st);
            goto done;
        }
        ids = malloc(sizeof *ids * (size_t)(p->n_jobs ? p->n_jobs : 1));
        if (!ids) {
            rc = cli_fail_status(lmx_err(LMX_ERR_NOMEM, "merge: out of memory"));
            goto done;
        }
        for (int64_t i = 0; i < p->n_jobs; i++)
            ids[i] = p->jobs[i].id;
        n_ids = p->n_jobs;
    }
    tb_merge_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.out_dirs = outs.items;
    mo.n_out_dirs = outs.n;
    mo.index_path = index;
    mo.verify = verify;
    mo.report = stderr;
    tb_merge_stats ms;
    if (quiet) mo.report = NULL;
    st = tb_merge((const char *const *)ids, n_ids, &mo, &ms);
    if (quiet)
        fprintf(stderr,
                "merge: %lld of %lld jobs complete, %lld missing, %lld duplicate, %lld conflicting, %lld "
                "corrupt, %lld extra\n",
                (long long)ms.found, (long long)ms.expected, (long long)ms.missing, (long long)ms.duplicates,
                (long long)ms.conflicts, (long long)ms.corrupt, (long long)ms.extra);
    if (st != LMX_OK) rc = cli_fail_status(st);
done:
    if (owned_ids)
        for (int64_t i = 0; i < n_ids; i++)
            free(ids[i]);
    free(ids);
    free(manifest);
    cJSON_Delete(mj);
    tb_plan_free(p);
    tb_free(tb);
    arg_list_free(&outs);
    return rc;
}

/* ---- dispatch ---------------------------------------------------------------- */

int cmd_testbed(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (!strcmp(argv[1], "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "merge")) return cmd_merge(argc - 1, argv + 1);
    cli_error("testbed: unknown command '%s' (plan, run or merge)", argv[1]);
    return CLI_USAGE;
}
