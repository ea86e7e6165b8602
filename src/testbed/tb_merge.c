/*
 * tb_merge.c - collecting the outputs of one or several output folders
 * (shards on shared storage, or copies gathered from several machines) into
 * one index, and saying what is missing.
 *
 * For every job id of the plan and every folder: complete (sidecar + PNG of
 * the recorded size, and with verify the recorded CRC-32), partial (a PNG
 * without sidecar: a job killed in flight), corrupt (a sidecar that does not
 * parse, names another job or disagrees with its PNG) or absent. A job
 * complete in several folders is a duplicate: harmless when the PNG bytes
 * agree, a conflict when they differ. Sidecars under a folder that belong
 * to no job of the plan are reported as extra (another plan wrote there),
 * and the run logs (the .jsonl files in logs/) are read to report jobs computed more than
 * once (overlapping shard specifications).
 *
 * The index is written atomically as JSON lines in plan order: each line is
 * the sidecar's job record plus where its files are and their size/CRC.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io_util.h"
#include "testbed/testbed.h"

#define TB_MAX_SIDECAR (4u << 20)

/* ---- id -> plan index -------------------------------------------------------------- */

typedef struct idmap {
    const char *const *ids;
    int64_t *slot; /* -1 empty, else index into ids */
    size_t cap;
} idmap;

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static lmx_status idmap_build(idmap *m, const char *const *ids, int64_t n, FILE *report) {
    m->ids = ids;
    m->cap = 16;
    while (m->cap < 2 * (size_t)n + 1)
        m->cap *= 2;
    m->slot = lmx_malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return lmx_err(LMX_ERR_NOMEM, "merge: out of memory");
    for (size_t i = 0; i < m->cap; i++)
        m->slot[i] = -1;
    int dups = 0;
    for (int64_t k = 0; k < n; k++) {
        size_t len = strlen(ids[k]);
        for (size_t i = hash(ids[k], len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
            if (m->slot[i] < 0) {
                m->slot[i] = k;
                break;
            }
            if (!strcmp(ids[m->slot[i]], ids[k])) {
                if (report && dups++ < 10) fprintf(report, "plan: job %s is listed twice\n", ids[k]);
                break;
            }
        }
    }
    if (dups) return lmx_err(LMX_ERR_ARG, "merge: the plan lists %d job ids more than once", dups);
    return LMX_OK;
}

static int64_t idmap_get(const idmap *m, const char *k, size_t n) {
    for (size_t i = hash(k, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slot[i] < 0) return -1;
        const char *s = m->ids[m->slot[i]];
        if (strlen(s) == n && !memcmp(s, k, n)) return m->slot[i];
    }
}

/* ---- one output of one folder ------------------------------------------------------------ */

enum { OUT_ABSENT = 0, OUT_PARTIAL, OUT_CORRUPT, OUT_COMPLETE };

typedef struct found {
    int state;
    cJSON *side; /* the parsed sidecar when complete      */
    uint64_t bytes;
    char crc[16];
    char why[160]; /* what is wrong when corrupt             */
} found;

static void inspect(const char *dir, const char *id, int verify, found *f) {
    memset(f, 0, sizeof *f);
    char *side = tb_path(dir, id, ".json"), *png = tb_path(dir, id, ".png");
    char *text = NULL;
    cJSON *j = NULL;
    struct stat sb;
    int have_png = png && stat(png, &sb) == 0 && S_ISREG(sb.st_mode);
    size_t n = 0;
    if (!side || !png) goto done;
    if (lmx_read_file(side, &text, &n, TB_MAX_SIDECAR) != LMX_OK) {
        f->state = have_png ? OUT_PARTIAL : OUT_ABSENT;
        goto done;
    }
    f->state = OUT_CORRUPT;
    io_cjson_oom_clear();
    j = cJSON_ParseWithLength(text, n);
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(job, "id");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "image");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(img, "bytes");
    const cJSON *crc = cJSON_GetObjectItemCaseSensitive(img, "crc32");
    if (!j) {
        snprintf(f->why, sizeof f->why, "the sidecar is not valid JSON");
        goto done;
    }
    if (!cJSON_IsString(jid) || strcmp(jid->valuestring, id) || !cJSON_IsNumber(bytes) ||
        !cJSON_IsString(crc)) {
        snprintf(f->why, sizeof f->why, "the sidecar does not describe this job");
        goto done;
    }
    if (!have_png) {
        snprintf(f->why, sizeof f->why, "the sidecar has no PNG");
        goto done;
    }
    if ((double)sb.st_size != bytes->valuedouble) {
        snprintf(f->why, sizeof f->why, "the PNG has %lld bytes, the sidecar says %.0f",
                 (long long)sb.st_size, bytes->valuedouble);
        goto done;
    }
    snprintf(f->crc, sizeof f->crc, "%.8s", crc->valuestring);
    if (verify) {
        uint32_t c = 0;
        if (tb_file_crc32(png, &c, NULL) != LMX_OK) {
            snprintf(f->why, sizeof f->why, "the PNG cannot be read");
            goto done;
        }
        char hex[16];
        snprintf(hex, sizeof hex, "%08x", c);
        if (strcmp(hex, f->crc)) {
            snprintf(f->why, sizeof f->why, "the PNG's CRC-32 is %s, the sidecar says %s", hex, f->crc);
            goto done;
        }
    }
    f->bytes = (uint64_t)sb.st_size;
    f->state = OUT_COMPLETE;
    f->side = j;
    j = NULL;
done:
    lmx_err_clear();
    cJSON_Delete(j);
    lmx_free(text);
    lmx_free(side);
    lmx_free(png);
}

/* ---- walking a folder for extra outputs and the run logs -------------------------------------- */

static int64_t count_extra(const char *dir, const idmap *m, FILE *report, int64_t shown) {
    int64_t extra = 0;
    DIR *d0 = opendir(dir);
    struct dirent *e0;
    while (d0 && (e0 = readdir(d0))) {
        if (e0->d_name[0] == '.' || !strcmp(e0->d_name, "logs")) continue;
        char *p1 = tb_path(dir, e0->d_name, NULL);
        DIR *d1 = p1 ? opendir(p1) : NULL;
        struct dirent *e1;
        while (d1 && (e1 = readdir(d1))) {
            if (e1->d_name[0] == '.') continue;
            char *p2 = tb_path(p1, e1->d_name, NULL);
            DIR *d2 = p2 ? opendir(p2) : NULL;
            struct dirent *e2;
            while (d2 && (e2 = readdir(d2))) {
                size_t n = strlen(e2->d_name);
                if (n < 6 || strcmp(e2->d_name + n - 5, ".json")) continue;
                char key[1024];
                int k =
                    snprintf(key, sizeof key, "%s/%s/%.*s", e0->d_name, e1->d_name, (int)(n - 5), e2->d_name);
                if (k <= 0 || (size_t)k >= sizeof key) continue;
                if (idmap_get(m, key, (size_t)k) >= 0) continue;
                if (report && shown + extra < 20)
                    fprintf(report, "extra: %s/%s.json (not in the plan)\n", dir, key);
                extra++;
            }
            if (d2) closedir(d2);
            lmx_free(p2);
        }
        if (d1) closedir(d1);
        lmx_free(p1);
    }
    if (d0) closedir(d0);
    return extra;
}

/* Add the "done" events of every run log under dir/logs to done[]. */
static void count_done(const char *dir, const idmap *m, int *done) {
    char *logs = tb_path(dir, "logs", NULL);
    DIR *d = logs ? opendir(logs) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".jsonl")) continue;
        char *path = tb_path(logs, e->d_name, NULL);
        char *text = NULL;
        size_t len = 0;
        if (path && lmx_read_file(path, &text, &len, (size_t)1 << 30) == LMX_OK) {
            char *line = text;
            while (line && *line) {
                char *nl = strchr(line, '\n');
                if (nl) *nl = 0;
                /* A line killed mid-write (no newline) is simply skipped. */
                if (nl && strstr(line, "\"event\":\"done\"")) {
                    cJSON *j = cJSON_Parse(line);
                    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "job");
                    if (cJSON_IsString(id)) {
                        int64_t k = idmap_get(m, id->valuestring, strlen(id->valuestring));
                        if (k >= 0) done[k]++;
                    }
                    cJSON_Delete(j);
                }
                line = nl ? nl + 1 : NULL;
            }
        }
        lmx_err_clear();
        lmx_free(text);
        lmx_free(path);
    }
    if (d) closedir(d);
    lmx_free(logs);
}

/* ---- tb_merge ----------------------------------------------------------------------------------- */

static cJSON *index_entry(const cJSON *side, const char *dir, const char *id, const found *f) {
    cJSON *e = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(side, "job"), 1);
    if (!e) return NULL;
    cJSON_AddStringToObject(e, "out_dir", dir);
    char *png = tb_path(dir, id, ".png"), *sc = tb_path(dir, id, ".json");
    if (png) cJSON_AddStringToObject(e, "image", png);
    if (sc) cJSON_AddStringToObject(e, "sidecar", sc);
    lmx_free(png);
    lmx_free(sc);
    cJSON_AddNumberToObject(e, "bytes", (double)f->bytes);
    cJSON_AddStringToObject(e, "crc32", f->crc);
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(side, "timings");
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(tm, "total_s");
    if (cJSON_IsNumber(tot)) cJSON_AddNumberToObject(e, "seconds", tot->valuedouble);
    static const char *const COPY[] = {"finished_at", "host", "shard", "loramix_version"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(COPY); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(side, COPY[i]);
        if (cJSON_IsString(v)) cJSON_AddStringToObject(e, COPY[i], v->valuestring);
    }
    return e;
}

lmx_status tb_merge(const char *const *job_ids, int64_t n_jobs, const tb_merge_opts *o,
                    tb_merge_stats *stats) {
    memset(stats, 0, sizeof *stats);
    io_cjson_init();
    FILE *rep = o->report;
    idmap m;
    memset(&m, 0, sizeof m);
    int *done = NULL;
    char *buf = NULL, *index_path = NULL;
    size_t len = 0, cap = 0;
    int64_t recomputed = 0, partial = 0;
    lmx_status st = LMX_OK;
    if (o->n_out_dirs < 1) return lmx_err(LMX_ERR_ARG, "merge: --out: at least one folder");
    for (int d = 0; d < o->n_out_dirs; d++) {
        struct stat sb;
        if (stat(o->out_dirs[d], &sb) != 0 || !S_ISDIR(sb.st_mode))
            return lmx_err(LMX_ERR_IO, "merge: %s: not a folder", o->out_dirs[d]);
    }
    stats->expected = n_jobs;
    if ((st = idmap_build(&m, job_ids, n_jobs, rep)) != LMX_OK) goto done;
    done = lmx_calloc((size_t)(n_jobs ? n_jobs : 1), sizeof *done);
    if (!done) {
        st = lmx_err(LMX_ERR_NOMEM, "merge: out of memory");
        goto done;
    }
    /* A job generated more than once in one folder (copies in several
     * folders are duplicates, reported below). */
    int *cnt = lmx_calloc((size_t)(n_jobs ? n_jobs : 1), sizeof *cnt);
    if (!cnt) {
        st = lmx_err(LMX_ERR_NOMEM, "merge: out of memory");
        goto done;
    }
    for (int d = 0; d < o->n_out_dirs; d++) {
        memset(cnt, 0, sizeof *cnt * (size_t)n_jobs);
        count_done(o->out_dirs[d], &m, cnt);
        for (int64_t k = 0; k < n_jobs; k++)
            if (cnt[k] > done[k]) done[k] = cnt[k];
    }
    lmx_free(cnt);

    found f[16];
    const int nd = o->n_out_dirs < 16 ? o->n_out_dirs : 16;
    if (o->n_out_dirs > 16) {
        st = lmx_err(LMX_ERR_ARG, "merge: at most 16 --out folders");
        goto done;
    }
    for (int64_t k = 0; k < n_jobs; k++) {
        const char *id = job_ids[k];
        int n_complete = 0, first = -1;
        for (int d = 0; d < nd; d++) {
            inspect(o->out_dirs[d], id, o->verify, &f[d]);
            if (f[d].state == OUT_COMPLETE) {
                n_complete++;
                if (first < 0) first = d;
            } else if (f[d].state == OUT_CORRUPT) {
                if (rep && stats->corrupt < 50)
                    fprintf(rep, "corrupt: %s/%s: %s\n", o->out_dirs[d], id, f[d].why);
                stats->corrupt++;
            } else if (f[d].state == OUT_PARTIAL) {
                partial++;
            }
        }
        if (done[k] > 1) {
            if (rep && recomputed < 20)
                fprintf(rep, "recomputed: %s was generated %d times in one folder (see its run logs)\n", id,
                        done[k]);
            recomputed++;
        }
        if (n_complete == 0) {
            if (rep && stats->missing < 200) fprintf(rep, "missing: %s\n", id);
            stats->missing++;
        } else {
            stats->found++;
            if (n_complete > 1) {
                int differ = 0;
                for (int d = first + 1; d < nd; d++)
                    if (f[d].state == OUT_COMPLETE &&
                        (strcmp(f[d].crc, f[first].crc) || f[d].bytes != f[first].bytes))
                        differ = 1;
                if (rep && stats->duplicates + stats->conflicts < 50)
                    fprintf(rep, "%s: %s is complete in %d folders%s\n", differ ? "conflict" : "duplicate",
                            id, n_complete, differ ? " with different images" : " (identical images)");
                if (differ)
                    stats->conflicts++;
                else
                    stats->duplicates++;
            }
            cJSON *e = index_entry(f[first].side, o->out_dirs[first], id, &f[first]);
            if (n_complete > 1) cJSON_AddNumberToObject(e, "copies", n_complete);
            char *line = e ? cJSON_PrintUnformatted(e) : NULL;
            cJSON_Delete(e);
            if (!line) {
                st = lmx_err(LMX_ERR_NOMEM, "merge: out of memory");
            } else {
                size_t ln = strlen(line);
                if (len + ln + 2 > cap) {
                    size_t nc = cap ? 2 * cap : 65536;
                    while (nc < len + ln + 2)
                        nc *= 2;
                    char *nb = lmx_realloc(buf, nc);
                    if (!nb)
                        st = lmx_err(LMX_ERR_NOMEM, "merge: out of memory");
                    else {
                        buf = nb;
                        cap = nc;
                    }
                }
                if (st == LMX_OK) {
                    memcpy(buf + len, line, ln);
                    len += ln;
                    buf[len++] = '\n';
                    buf[len] = 0;
                }
                cJSON_free(line);
            }
        }
        for (int d = 0; d < nd; d++)
            cJSON_Delete(f[d].side);
        if (st != LMX_OK) goto done;
    }
    for (int d = 0; d < nd; d++)
        stats->extra += count_extra(o->out_dirs[d], &m, rep, stats->extra);
    if (stats->missing > 200 && rep)
        fprintf(rep, "... and %lld more missing\n", (long long)(stats->missing - 200));

    index_path = o->index_path ? lmx_strdup(o->index_path) : tb_path(o->out_dirs[0], "index.jsonl", NULL);
    if (!index_path) {
        st = lmx_err(LMX_ERR_NOMEM, "merge: out of memory");
        goto done;
    }
    if ((st = lmx_write_file_atomic(index_path, buf ? buf : "", len)) != LMX_OK) goto done;
    if (rep) {
        fprintf(rep, "merge: %lld of %lld jobs complete, %lld missing", (long long)stats->found,
                (long long)stats->expected, (long long)stats->missing);
        if (partial) fprintf(rep, " (%lld with a PNG but no sidecar: killed in flight)", (long long)partial);
        fprintf(rep, ", %lld duplicate, %lld conflicting, %lld corrupt, %lld extra",
                (long long)stats->duplicates, (long long)stats->conflicts, (long long)stats->corrupt,
                (long long)stats->extra);
        if (recomputed) fprintf(rep, ", %lld recomputed", (long long)recomputed);
        fprintf(rep, "\nindex: %s (%lld lines)\n", index_path, (long long)stats->found);
    }
    if (stats->missing || stats->corrupt || stats->conflicts)
        st = lmx_err(LMX_ERR_IO, "merge: incomplete: %lld missing, %lld corrupt, %lld conflicting",
                     (long long)stats->missing, (long long)stats->corrupt, (long long)stats->conflicts);
done:
    lmx_free(index_path);
    lmx_free(buf);
    lmx_free(done);
    lmx_free(m.slot);
    return st;
}
