/*
 * testbed.h - the ComposLoRA multi-LoRA composition testbed as a runnable
 * benchmark (docs/testbed.md): its definition (the JSON files in data/testbed/),
 * the enumeration of every composition set, job naming, sharding, the
 * resumable runner and the merge of shard outputs into one index.
 *
 * The module sits above the public API (include/loramix.h): it loads models
 * and LoRAs and generates images only through lmx_* calls.
 *
 * Definition. data/testbed/testbed.json names the subsets (anime, reality)
 * with their per-subset defaults (base model, VAE, size, steps, CFG,
 * scheduler, LoRA scale, switch interval, base and negative prompt) and the
 * seed protocols; each subset's LoRAs come from its lora_info file
 * (byte-identical to the upstream anime_lora_info.json /
 * reality_lora_info.json), whose key order fixes the category order.
 *
 * Plan order (the job index i, 0-based), outermost first:
 *     subset   in the selection order (anime before reality for "both")
 *     N        2, 3, 4, 5
 *     set      docs/testbed.md §5: combinations of the non-character categories
 *              (lexicographic in file order), product over their LoRAs (last
 *              category fastest); set = 1-based position within (subset, N)
 *     method   in --methods order
 *     seed     in --seeds order; j = 1-based position of the seed in that list
 * --limit L keeps the first L jobs of that order. Sharding: job i belongs to
 * shard K of N (K = 1..N) iff i mod N == K-1, so shards are disjoint, cover
 * the plan and need no coordination; every shard must be given the same
 * selection flags.
 *
 * Job names (docs/testbed.md §6, WPAPER pattern with the method name, under a
 * subset folder so both subsets can share one output directory):
 *     {subset}/{method}_{N}/{id1}_..._{idN}_{j}_seed{seed}      (the job id)
 *     {out}/{job id}.png   the image,  {out}/{job id}.json   its sidecar
 *
 * Seeds. Protocol "wpaper": every image starts from a fresh
 * torch.manual_seed(seed). Protocol "zhong" (a stream protocol): set k
 * (1-based) of a (subset, method, N) run takes the k-th initial-noise draw of
 * one stream seeded `seed`, i.e. lmx_gen_params.noise_skip = k - 1.
 */
#ifndef LMX_TESTBED_H
#define LMX_TESTBED_H

#include <stdint.h>
#include <stdio.h>

#include "core/core.h"
#include "loramix.h"

#define TB_MAX_CATS 8    /* categories per subset (the testbed has 5)       */
#define TB_MAX_SUBSETS 8 /* subsets in a definition (the testbed has 2)     */

/* ---- the definition -------------------------------------------------------- */

typedef struct tb_lora {
    char *id;                   /* "character_1"                              */
    char *name;                 /* "Kamado Nezuko"                            */
    char *url;                  /* the Civitai page (may be NULL)             */
    int cat;                    /* index into tb_subset.cats                  */
    lmx_lora_category category; /* LMX_CAT_OTHER for an unknown key           */
    char **triggers;            /* in prompt order                            */
    int n_triggers;
} tb_lora;

typedef struct tb_subset {
    char *name;              /* "anime"                                    */
    char *lora_info;         /* path of the lora_info file read            */
    char *cats[TB_MAX_CATS]; /* top-level keys in file order               */
    int n_cats;
    int cat_first[TB_MAX_CATS]; /* LoRAs of category c: loras[first..first+n) */
    int cat_n[TB_MAX_CATS];
    int character;  /* index of the "character" category          */
    tb_lora *loras; /* all LoRAs, category by category            */
    int n_loras;
    /* per-subset defaults */
    char *base_model, *vae; /* names for the record (vae NULL = own)      */
    int width, height, steps;
    float cfg, lora_scale;
    char *scheduler;        /* lmx_scheduler_parse name, e.g. "dpm++2m"   */
    char *timestep_spacing; /* NULL = the model's config                  */
    int switch_steps, tail_steps;
    char *base_prompt, *negative_prompt;
} tb_subset;

typedef struct tb_protocol {
    char *name; /* "wpaper", "zhong"                          */
    char *description;
    uint64_t *seeds;
    int n_seeds;
    int stream; /* 1: one generator stream per (subset, method, N) */
} tb_protocol;

typedef struct tb_testbed {
    char *dir; /* the folder the definition was read from    */
    char *name;
    tb_subset *subsets;
    int n_subsets;
    tb_protocol *protocols;
    int n_protocols;
    int default_protocol;
    int n_values[8]; /* the N values, ascending (2, 3, 4, 5)       */
    int n_n_values;
} tb_testbed;

/* Read the definition from `dir`/testbed.json (dir NULL: the bundled
 * testbed/testbed.json found by lmx_data_find). Everything is checked:
 * unknown or missing fields, ids that are not "<category>_<k>", duplicate
 * ids, a subset without a "character" category, N values that the
 * categories cannot fill. Errors name the file and the field. */
lmx_status tb_load(tb_testbed **out, const char *dir);
void tb_free(tb_testbed *tb);
int tb_subset_find(const tb_testbed *tb, const char *name);   /* -1 if none */
int tb_protocol_find(const tb_testbed *tb, const char *name); /* -1 if none */
int tb_lora_find(const tb_subset *s, const char *id);         /* -1 if none */

/* ---- selection and plan ------------------------------------------------------ */

typedef struct tb_selection {
    int subsets[TB_MAX_SUBSETS]; /* indices into tb->subsets, in plan order   */
    int n_subsets;
    lmx_method methods[LMX_METHOD_COUNT];
    int n_methods;
    uint64_t seeds[64];
    int n_seeds;
    int protocol;    /* index into tb->protocols                  */
    unsigned n_mask; /* bit N set: N is selected                  */
    int64_t limit;   /* keep the first `limit` jobs; 0 = all      */
} tb_selection;

/* The selection every flag at its default: all subsets in definition order,
 * all five methods, the default protocol and its seeds, every N, no limit. */
void tb_selection_default(const tb_testbed *tb, tb_selection *sel);
/* Parsers for the flags (comma-separated lists; errors name the flag):
 *   subsets: "anime", "reality", "both"/"all", or a list  (--subset)
 *   methods: names as lmx_method_parse, or "all"          (--methods)
 *   seeds:   non-negative integers                        (--seeds)
 *   n:       integers among the definition's N values     (--n)
 * tb_selection_set_protocol also resets the seeds to the protocol's. */
lmx_status tb_selection_subsets(const tb_testbed *tb, tb_selection *sel, const char *s);
lmx_status tb_selection_methods(tb_selection *sel, const char *s);
lmx_status tb_selection_seeds(tb_selection *sel, const char *s);
lmx_status tb_selection_n(const tb_testbed *tb, tb_selection *sel, const char *s);
lmx_status tb_selection_set_protocol(const tb_testbed *tb, tb_selection *sel, const char *name);

typedef struct tb_set {
    int subset;            /* index into tb->subsets                    */
    int n;                 /* LoRAs in the set                          */
    int index;             /* 1-based within (subset, n), §5 order      */
    int lora[TB_MAX_CATS]; /* indices into the subset's loras, composition order */
    char *prompt;          /* base + ", " + all triggers, in order      */
    char *slug;            /* "character_1_clothing_1"                  */
} tb_set;

typedef struct tb_job {
    int64_t index; /* position in the plan, 0-based             */
    int set;       /* index into plan->sets                     */
    lmx_method method;
    uint64_t seed;
    int j;               /* 1-based position of the seed              */
    uint64_t noise_skip; /* stream protocol: set index - 1            */
    char *id;            /* "{subset}/{method}_{N}/{slug}_{j}_seed{seed}" */
} tb_job;

typedef struct tb_plan {
    const tb_testbed *tb;
    tb_selection sel;
    tb_set *sets; /* every selected set, plan order            */
    int n_sets;
    tb_job *jobs; /* after --limit                             */
    int64_t n_jobs;
} tb_plan;

/* Enumerate the sets of one subset and N in §5 order into sets[] (capacity
 * cap; the count is returned in *n_out even when it exceeds cap, so a NULL
 * / 0 call sizes the array). Prompts and slugs are not filled. */
lmx_status tb_enumerate(const tb_testbed *tb, int subset, int n, tb_set *sets, int cap, int *n_out);
/* The whole plan of a selection (see the order at the top). */
lmx_status tb_plan_build(tb_plan **out, const tb_testbed *tb, const tb_selection *sel);
void tb_plan_free(tb_plan *p);

/* Shard rule: 1 when job `index` belongs to shard k of n (k = 1..n). */
static inline int tb_in_shard(int64_t index, int k, int n) {
    return n <= 1 || index % n == (int64_t)(k - 1);
}
/* Parse "K/N" (1 <= K <= N <= 1000000). */
lmx_status tb_shard_parse(const char *s, int *k, int *n);

/* The method's folder name: lmx_method_name ("merge", "w-switch", ...). */
const char *tb_method_dir(lmx_method m);

/* One job as a JSON object (cJSON *, caller deletes): index, id, subset, n,
 * set, loras, method, seed, j, protocol, noise_skip, prompt,
 * negative_prompt and, when out_dir is not NULL, "output" (the PNG path). */
struct cJSON *tb_job_json(const tb_plan *p, const tb_job *job, const char *out_dir);
/* One composition set as a JSON object (caller deletes): subset, n, set,
 * loras, slug, jobs (n_jobs: how many of the listed jobs use it), prompt. */
struct cJSON *tb_set_json(const tb_plan *p, int set, int64_t n_jobs);
/* Write the plan summary: set and job counts per subset and N. */
void tb_plan_summary(const tb_plan *p, int shard_k, int shard_n, FILE *f);
/* The selection as a JSON object (for the run manifest) and back. */
struct cJSON *tb_selection_json(const tb_testbed *tb, const tb_selection *sel);
lmx_status tb_selection_from_json(const tb_testbed *tb, const struct cJSON *j, tb_selection *sel);

/* ---- running ----------------------------------------------------------------- */

/* Test hook: generate one image as lmx_generate does (NULL = lmx_generate). */
typedef lmx_status (*tb_generate_fn)(lmx_ctx *ctx, const lmx_gen_params *p, lmx_image *img, const tb_job *job,
                                     void *user);

typedef struct tb_run_opts {
    const char *out_dir;
    const char *lora_dir;              /* LoRA files: {lora_dir}/{subset}/{id}.safetensors */
    const char *model[TB_MAX_SUBSETS]; /* per subset index; NULL: model_all    */
    const char *model_all;
    const char *vae[TB_MAX_SUBSETS]; /* per subset index; NULL: vae_all      */
    const char *vae_all;
    int shard_k, shard_n; /* 1/1 = everything                        */
    /* overrides of the subset defaults (0 = the definition's value) */
    int steps, width, height;
    float cfg;
    int threads; /* 0 = all cores                           */
    lmx_precision precision;
    int no_lora;             /* test hook: generate without LoRAs       */
    int progress;            /* 0 none, 1 one line per job, 2 live (a terminal) */
    FILE *log;               /* messages and progress (stderr)          */
    int wait;                /* another runner holds the shard: 1 wait, 0 fail */
    tb_generate_fn generate; /* test hook, NULL = lmx_generate          */
    void *generate_user;
} tb_run_opts;

tb_run_opts tb_run_opts_default(void);

/* ---- sharing an output folder (tb_lock.c) ----------------------------------------
 * A runner holds {out}/.lock-shard-K-of-N for its whole run: an advisory
 * fcntl lock (open-file-description lock on Linux) that the kernel drops
 * when the process ends, kill -9 included; the file stays and its first line
 * names the last holder ("pid P on HOST since TIME"). tb_lock_shard takes it
 * and then checks the other shard locks of the folder: a held one whose
 * shard overlaps K/N (another N; K-1 = K'-1 mod gcd(N, N')) is refused too.
 * wait 0: fail at once (LMX_ERR_IO naming the folder, the shard and the
 * holder); 1: wait for the holder (a note goes to msg). The manifest lock
 * ({out}/.lock-manifest) serialises the read-modify-write of
 * testbed-run.json between shards. On a file system that cannot lock
 * (ENOLCK and the like) a warning goes to msg and the run goes on unlocked. */
typedef struct tb_lock {
    int fd;
    char *path;
} tb_lock;
void tb_lock_init(tb_lock *l);
lmx_status tb_lock_shard(tb_lock *l, const char *out_dir, int k, int n, int wait, FILE *msg);
lmx_status tb_lock_manifest(tb_lock *l, const char *out_dir);
void tb_unlock(tb_lock *l); /* also safe on an initialised, unlocked tb_lock */
/* 1 when process `pid` exists on this host (kill(pid, 0) succeeds or EPERM). */
int tb_pid_alive(long pid);

typedef struct tb_run_stats {
    int64_t in_shard;     /* jobs of this shard                      */
    int64_t skipped;      /* already complete (resume)               */
    int64_t done, failed; /* in this run                             */
} tb_run_stats;

/* Run the shard's jobs of a plan: LoRA files are checked first (every
 * missing file is listed, nothing runs), then each pending job is generated,
 * its PNG written atomically and its sidecar JSON written last (the sidecar
 * marks completion). A failed job is logged and the run goes on. Returns
 * LMX_OK when every job of the shard is complete; LMX_ERR_IO (nothing run)
 * when LoRA files are missing; otherwise the status of the first failed job
 * (stats say how many failed). */
lmx_status tb_run(const tb_plan *p, const tb_run_opts *o, tb_run_stats *stats);

/* 1 when the job's sidecar and PNG under out_dir are complete and agree. */
int tb_job_complete(const char *out_dir, const char *job_id);

/* ---- merging ------------------------------------------------------------------- */

typedef struct tb_merge_opts {
    const char *const *out_dirs; /* one or several output folders           */
    int n_out_dirs;
    const char *index_path; /* NULL: {out_dirs[0]}/index.jsonl         */
    int verify;             /* 1: check every PNG's CRC-32 too         */
    FILE *report;           /* the list of missing/duplicate jobs      */
} tb_merge_opts;

typedef struct tb_merge_stats {
    int64_t expected, found, missing, duplicates, conflicts, corrupt, extra;
} tb_merge_stats;

/* Look for every job id in the output folders and write the index (JSON
 * lines in plan order, one per found job: the sidecar's job fields, the PNG
 * path and its size/CRC). Reports missing jobs, duplicates (a job complete
 * in more than one folder: identical bytes, or a conflict when they differ),
 * corrupt outputs (sidecar without a matching PNG) and extra outputs (files
 * of jobs not in the plan). LMX_OK only when nothing is missing, corrupt or
 * conflicting. */
lmx_status tb_merge(const char *const *job_ids, int64_t n_jobs, const tb_merge_opts *o,
                    tb_merge_stats *stats);

/* ---- helpers shared by the files of the module (tb_util.c) ---------------------- */

lmx_status tb_mkdirs(const char *dir);                        /* mkdir -p; existing is fine */
char *tb_path(const char *a, const char *b, const char *ext); /* "a/b.ext" (lmx_free) */
void tb_iso_time(char *buf, size_t cap);                      /* "2026-11-25T15:14:03.123Z" */
lmx_status tb_file_crc32(const char *path, uint32_t *crc, uint64_t *size);
char *tb_strdup_printf(const char *fmt, ...) LMX_PRINTF(1, 2);
/* A float as the shortest double that prints like it (0.8f -> 0.8, for JSON). */
double tb_f2d(float x);

#endif /* LMX_TESTBED_H */
