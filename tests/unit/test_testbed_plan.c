/*
 * test_testbed_plan.c - the testbed definition and plan (src/testbed):
 * the bundled data (both subsets, prompts, per-subset defaults, protocols;
 * the lora_info files byte-identical to the upstream ones), the set
 * enumeration and prompts against the reference enumeration dumped by
 * reference/gen_testbed.py (tests/fixtures/testbed/sets.tsv), the nesting of
 * methods and seeds, job names, --limit, the shard rule, the ZHONG stream
 * offsets, selection parsing and its JSON round trip, and custom / broken
 * definitions (--testbed-dir) written at test time.
 */
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "testbed/testbed.h"

/* ---- golden lists ------------------------------------------------------------ */

typedef struct row {
    char *f[5];
} row;

/* Read a TSV golden file (comment lines start with '#'). */
static int read_tsv(const char *rel, row *rows, int cap, int n_fields) {
    char *text = NULL;
    size_t n = 0;
    if (lmx_read_file(lmx_src_path(rel), &text, &n, 1u << 24) != LMX_OK) {
        CHECK(0, "cannot read %s: %s (regenerate: python3 reference/gen_testbed.py)", rel, lmx_errmsg());
        return 0;
    }
    int k = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        if (k == cap) break;
        char *p = line;
        for (int i = 0; i < n_fields; i++) {
            char *tab = i < n_fields - 1 ? strchr(p, '\t') : NULL;
            if (tab) *tab = 0;
            rows[k].f[i] = lmx_strdup(p);
            p = tab ? tab + 1 : p + strlen(p);
        }
        k++;
    }
    lmx_free(text);
    return k;
}

static void free_rows(row *rows, int n, int n_fields) {
    for (int k = 0; k < n; k++)
        for (int i = 0; i < n_fields; i++)
            lmx_free(rows[k].f[i]);
}

static void set_ids(const tb_testbed *tb, const tb_set *t, char *buf, size_t cap) {
    buf[0] = 0;
    const tb_subset *s = &tb->subsets[t->subset];
    for (int i = 0; i < t->n; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? "," : "", s->loras[t->lora[i]].id);
}

/* ---- the bundled definition -------------------------------------------------- */

static void test_definition(const tb_testbed *tb) {
    CHECK(tb->n_subsets == 2, "%d subsets", tb->n_subsets);
    CHECK(!strcmp(tb->subsets[0].name, "anime") && !strcmp(tb->subsets[1].name, "reality"), "subset order");
    static const char *CATS[] = {"character", "clothing", "style", "background", "object"};
    static const int PER[] = {3, 2, 2, 2, 2};
    for (int s = 0; s < tb->n_subsets; s++) {
        const tb_subset *ss = &tb->subsets[s];
        CHECK(ss->n_loras == 11, "%s: %d LoRAs", ss->name, ss->n_loras);
        CHECK(ss->n_cats == 5, "%s: %d categories", ss->name, ss->n_cats);
        for (int c = 0; c < 5 && c < ss->n_cats; c++) {
            CHECK(!strcmp(ss->cats[c], CATS[c]), "%s: category %d is %s", ss->name, c, ss->cats[c]);
            CHECK(ss->cat_n[c] == PER[c], "%s: %s has %d LoRAs", ss->name, CATS[c], ss->cat_n[c]);
        }
        CHECK(ss->character == 0, "character index");
        CHECK(ss->lora_scale == 0.8f && ss->switch_steps == 5 && ss->tail_steps == 5, "%s: scale/switch",
              ss->name);
        CHECK(!strcmp(ss->scheduler, "dpm++2m") && !ss->timestep_spacing, "%s: scheduler", ss->name);
        for (int i = 0; i < ss->n_loras; i++) {
            const tb_lora *l = &ss->loras[i];
            CHECK(!strncmp(l->id, ss->cats[l->cat], strlen(ss->cats[l->cat])), "%s: id %s", ss->name, l->id);
            CHECK(l->category == (lmx_lora_category)(LMX_CAT_CHARACTER + l->cat), "%s: category enum", l->id);
            CHECK(l->n_triggers >= 1 && l->url, "%s: triggers/url", l->id);
        }
    }
    const tb_subset *a = &tb->subsets[0], *r = &tb->subsets[1];
    CHECK(a->width == 512 && a->height == 512 && a->steps == 200 && a->cfg == 10.0f, "anime settings");
    CHECK(r->width == 768 && r->height == 1024 && r->steps == 100 && r->cfg == 7.0f, "reality settings");
    CHECK(!a->vae && r->vae && !strcmp(r->vae, "stabilityai/sd-vae-ft-mse"), "VAEs");
    CHECK(!strcmp(a->base_model, "gsdf/Counterfeit-V2.5"), "anime model");
    CHECK(!strcmp(r->base_model, "SG161222/Realistic_Vision_V5.1_noVAE"), "reality model");
    /* Spot checks of the LoRA table (docs/testbed.md §1). */
    int k = tb_lora_find(r, "character_3");
    CHECK(k >= 0 && r->loras[k].n_triggers == 3 && !strcmp(r->loras[k].triggers[0], "th3r0ck with no hair"),
          "reality character_3 triggers");
    k = tb_lora_find(a, "object_2");
    CHECK(k >= 0 && a->loras[k].n_triggers == 2 && !strcmp(a->loras[k].triggers[1], "toast in mouth"),
          "anime object_2 triggers");
    k = tb_lora_find(a, "style_2");
    CHECK(k >= 0 && !strcmp(a->loras[k].name, "Shuimobysim (Chinese Ink Wash Style)"), "anime style_2 name");
    /* Protocols. */
    int w = tb_protocol_find(tb, "wpaper"), z = tb_protocol_find(tb, "zhong");
    CHECK(w >= 0 && tb->default_protocol == w, "default protocol wpaper");
    CHECK(w >= 0 && tb->protocols[w].n_seeds == 3 && tb->protocols[w].seeds[0] == 42 &&
              tb->protocols[w].seeds[2] == 44 && !tb->protocols[w].stream,
          "wpaper seeds");
    CHECK(z >= 0 && tb->protocols[z].n_seeds == 1 && tb->protocols[z].seeds[0] == 111 &&
              tb->protocols[z].stream,
          "zhong seed stream");
    CHECK(tb->n_n_values == 4 && tb->n_values[0] == 2 && tb->n_values[3] == 5, "N values");

    /* Base and negative prompts: the spec strings (typed independently). */
    row rows[4];
    int n = read_tsv("tests/fixtures/testbed/subsets.tsv", rows, 4, 3);
    CHECK(n == 2, "subsets.tsv rows %d", n);
    for (int i = 0; i < n; i++) {
        int s = tb_subset_find(tb, rows[i].f[0]);
        CHECK(s >= 0, "subset %s", rows[i].f[0]);
        if (s < 0) continue;
        CHECK(!strcmp(tb->subsets[s].base_prompt, rows[i].f[1]), "%s base prompt", rows[i].f[0]);
        CHECK(!strcmp(tb->subsets[s].negative_prompt, rows[i].f[2]), "%s negative prompt", rows[i].f[0]);
    }
    free_rows(rows, n, 3);

    /* The lora_info files are the upstream bytes (CRC-32 of the spec copies). */
    uint32_t crc = 0;
    CHECK_OK(tb_file_crc32(lmx_src_path("data/testbed/anime_lora_info.json"), &crc, NULL));
    CHECK(crc == 0x515dc33fu, "anime_lora_info.json changed (crc %08x)", crc);
    CHECK_OK(tb_file_crc32(lmx_src_path("data/testbed/reality_lora_info.json"), &crc, NULL));
    CHECK(crc == 0x1d3420fdu, "reality_lora_info.json changed (crc %08x)", crc);
}

/* ---- the plan against the reference enumeration -------------------------------- */

static void test_reference_order(const tb_testbed *tb) {
    static row rows[600];
    int n = read_tsv("tests/fixtures/testbed/sets.tsv", rows, 600, 5);
    CHECK(n == 480, "golden has %d sets", n);
    tb_selection sel;
    tb_selection_default(tb, &sel);
    CHECK_OK(tb_selection_methods(&sel, "merge"));
    CHECK_OK(tb_selection_seeds(&sel, "42"));
    tb_plan *p = NULL;
    CHECK_OK(tb_plan_build(&p, tb, &sel));
    if (!p) return;
    CHECK(p->n_sets == 480 && p->n_jobs == 480, "%d sets, %lld jobs", p->n_sets, (long long)p->n_jobs);
    int bad = 0;
    for (int k = 0; k < n && k < p->n_sets; k++) {
        const tb_set *t = &p->sets[k];
        char ids[256], num[16], idx[16];
        set_ids(tb, t, ids, sizeof ids);
        snprintf(num, sizeof num, "%d", t->n);
        snprintf(idx, sizeof idx, "%d", t->index);
        int ok = !strcmp(rows[k].f[0], tb->subsets[t->subset].name) && !strcmp(rows[k].f[1], num) &&
                 !strcmp(rows[k].f[2], idx) && !strcmp(rows[k].f[3], ids) && !strcmp(rows[k].f[4], t->prompt);
        if (!ok && bad++ < 5)
            CHECK(0, "set %d: %s N=%s #%s %s \"%s\" vs reference %s N=%s #%s %s \"%s\"", k,
                  tb->subsets[t->subset].name, num, idx, ids, t->prompt, rows[k].f[0], rows[k].f[1],
                  rows[k].f[2], rows[k].f[3], rows[k].f[4]);
    }
    CHECK(bad == 0, "%d sets differ from the reference enumeration", bad);
    /* Counts per subset and N: 24/72/96/48. */
    static const int COUNT[6] = {0, 0, 24, 72, 96, 48};
    for (int s = 0; s < 2; s++)
        for (int nn = 2; nn <= 5; nn++) {
            int c = 0;
            for (int k = 0; k < p->n_sets; k++)
                c += p->sets[k].subset == s && p->sets[k].n == nn;
            CHECK(c == COUNT[nn], "subset %d N=%d: %d sets", s, nn, c);
            int cnt = 0;
            CHECK_OK(tb_enumerate(tb, s, nn, NULL, 0, &cnt));
            CHECK(cnt == COUNT[nn], "tb_enumerate count %d", cnt);
        }
    /* The spec's examples. */
    CHECK(!strcmp(p->jobs[0].id, "anime/merge_2/character_1_clothing_1_1_seed42"), "first id %s",
          p->jobs[0].id);
    CHECK(!strcmp(p->jobs[479].id,
                  "reality/merge_5/character_3_clothing_2_style_2_background_2_object_2_1_seed42"),
          "last id %s", p->jobs[479].id);
    tb_plan_free(p);
    free_rows(rows, n, 5);
}

/* Methods and seeds nest inside sets: set, then method, then seed. */
static void test_nesting_and_names(const tb_testbed *tb) {
    tb_selection sel;
    tb_selection_default(tb, &sel);
    CHECK_OK(tb_selection_subsets(tb, &sel, "reality"));
    CHECK_OK(tb_selection_methods(&sel, "composite,w_switch"));
    CHECK_OK(tb_selection_seeds(&sel, "42, 43,44"));
    tb_plan *p = NULL;
    CHECK_OK(tb_plan_build(&p, tb, &sel));
    if (!p) return;
    CHECK(p->n_jobs == 240 * 2 * 3, "%lld jobs", (long long)p->n_jobs);
    for (int64_t k = 0; k < p->n_jobs; k++) {
        const tb_job *j = &p->jobs[k];
        int ok = j->index == k && j->set == (int)(k / 6) &&
                 j->method == (k / 3 % 2 ? LMX_METHOD_W_SWITCH : LMX_METHOD_COMPOSITE) &&
                 j->seed == (uint64_t)(42 + k % 3) && j->j == (int)(k % 3) + 1 && j->noise_skip == 0;
        if (!ok) {
            CHECK(0, "job %lld: set %d method %d seed %llu j %d", (long long)k, j->set, j->method,
                  (unsigned long long)j->seed, j->j);
            break;
        }
    }
    CHECK(!strcmp(p->jobs[4].id, "reality/w-switch_2/character_1_clothing_1_2_seed43"), "id %s",
          p->jobs[4].id);
    /* The WPAPER example name, with the method's folder. */
    CHECK(!strcmp(p->jobs[0].id, "reality/composite_2/character_1_clothing_1_1_seed42"), "id %s",
          p->jobs[0].id);
    /* 720 images per method, as the WPAPER protocol says. */
    int per_method = 0;
    for (int64_t k = 0; k < p->n_jobs; k++)
        per_method += p->jobs[k].method == LMX_METHOD_COMPOSITE;
    CHECK(per_method == 720, "%d composite images", per_method);
    /* The job JSON. */
    cJSON *j = tb_job_json(p, &p->jobs[5], "/o");
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    CHECK(s && strstr(s, "\"id\":\"reality/w-switch_2/character_1_clothing_1_3_seed44\""), "json %s",
          s ? s : "");
    CHECK(s && strstr(s, "\"output\":\"/o/reality/w-switch_2/character_1_clothing_1_3_seed44.png\""),
          "output");
    CHECK(s && strstr(s, "\"loras\":[\"character_1\",\"clothing_1\"]") && strstr(s, "\"seed\":44,"),
          "fields");
    cJSON_free(s);
    cJSON_Delete(j);

    /* --limit keeps a prefix of the same order. */
    tb_selection lim = sel;
    lim.limit = 17;
    tb_plan *q = NULL;
    CHECK_OK(tb_plan_build(&q, tb, &lim));
    CHECK(q && q->n_jobs == 17, "limit");
    for (int64_t k = 0; q && k < q->n_jobs; k++)
        CHECK(!strcmp(q->jobs[k].id, p->jobs[k].id), "limit prefix %lld", (long long)k);
    tb_plan_free(q);

    /* Shards: disjoint, covering, balanced within one job. */
    for (int n = 1; n <= 7; n++) {
        int64_t cover = 0, lo = p->n_jobs, hi = 0;
        for (int k = 1; k <= n; k++) {
            int64_t c = 0;
            for (int64_t i = 0; i < p->n_jobs; i++)
                c += tb_in_shard(p->jobs[i].index, k, n);
            cover += c;
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
        CHECK(cover == p->n_jobs && hi - lo <= 1, "shards of %d: cover %lld, %lld..%lld", n, (long long)cover,
              (long long)lo, (long long)hi);
    }
    for (int64_t i = 0; i < p->n_jobs; i++) {
        int owners = 0;
        for (int k = 1; k <= 5; k++)
            owners += tb_in_shard(i, k, 5);
        if (owners != 1) {
            CHECK(0, "job %lld has %d owners", (long long)i, owners);
            break;
        }
    }
    CHECK(tb_in_shard(7, 3, 5) && !tb_in_shard(7, 2, 5), "7 mod 5 == 2 -> shard 3/5");
    tb_plan_free(p);
}

static void test_zhong_stream(const tb_testbed *tb) {
    tb_selection sel;
    tb_selection_default(tb, &sel);
    CHECK_OK(tb_selection_set_protocol(tb, &sel, "zhong"));
    CHECK_OK(tb_selection_methods(&sel, "merge,switch"));
    CHECK_OK(tb_selection_n(tb, &sel, "3"));
    CHECK(sel.n_seeds == 1 && sel.seeds[0] == 111, "zhong seeds");
    tb_plan *p = NULL;
    CHECK_OK(tb_plan_build(&p, tb, &sel));
    if (!p) return;
    CHECK(p->n_jobs == 2 * 72 * 2, "%lld jobs", (long long)p->n_jobs);
    for (int64_t k = 0; k < p->n_jobs; k++) {
        const tb_job *j = &p->jobs[k];
        const tb_set *t = &p->sets[j->set];
        if (j->noise_skip != (uint64_t)(t->index - 1) || t->n != 3) {
            CHECK(0, "job %s: noise_skip %llu, set %d", j->id, (unsigned long long)j->noise_skip, t->index);
            break;
        }
    }
    CHECK(!strcmp(p->jobs[3].id, "anime/switch_3/character_1_clothing_1_style_2_1_seed111"), "id %s",
          p->jobs[3].id);
    tb_plan_free(p);
}

static void test_selection_parsing(const tb_testbed *tb) {
    tb_selection sel;
    tb_selection_default(tb, &sel);
    CHECK(sel.n_subsets == 2 && sel.n_methods == LMX_METHOD_COUNT && sel.n_seeds == 3 && sel.limit == 0,
          "defaults");
    CHECK(tb_selection_subsets(tb, &sel, "cartoon") == LMX_ERR_ARG && strstr(lmx_errmsg(), "cartoon"),
          "bad subset");
    CHECK(tb_selection_subsets(tb, &sel, "anime,anime") == LMX_ERR_ARG, "dup subset");
    CHECK_OK(tb_selection_subsets(tb, &sel, "reality,anime"));
    CHECK(sel.n_subsets == 2 && sel.subsets[0] == 1, "subset order kept");
    CHECK_OK(tb_selection_subsets(tb, &sel, "both"));
    CHECK(sel.n_subsets == 2 && sel.subsets[0] == 0, "both");
    CHECK(tb_selection_methods(&sel, "merge,blend") == LMX_ERR_ARG && strstr(lmx_errmsg(), "blend"),
          "bad method");
    CHECK(tb_selection_methods(&sel, "merge,,switch") == LMX_ERR_ARG, "empty item");
    CHECK(tb_selection_methods(&sel, "merge,merge") == LMX_ERR_ARG, "dup method");
    CHECK_OK(tb_selection_methods(&sel, "all"));
    CHECK(sel.n_methods == LMX_METHOD_COUNT, "all methods");
    CHECK(tb_selection_seeds(&sel, "-1") == LMX_ERR_ARG, "negative seed");
    CHECK(tb_selection_seeds(&sel, "4x") == LMX_ERR_ARG, "bad seed");
    CHECK(tb_selection_seeds(&sel, "1,1") == LMX_ERR_ARG, "dup seed");
    CHECK(tb_selection_n(tb, &sel, "6") == LMX_ERR_ARG, "bad N");
    CHECK(tb_selection_set_protocol(tb, &sel, "nope") == LMX_ERR_ARG && strstr(lmx_errmsg(), "wpaper"),
          "protocol");
    int k = 0, n = 0;
    CHECK(tb_shard_parse("3/8", &k, &n) == LMX_OK && k == 3 && n == 8, "shard 3/8");
    CHECK(tb_shard_parse("0/2", &k, &n) == LMX_ERR_ARG, "shard 0/2");
    CHECK(tb_shard_parse("3/2", &k, &n) == LMX_ERR_ARG, "shard 3/2");
    CHECK(tb_shard_parse("1/", &k, &n) == LMX_ERR_ARG, "shard 1/");
    CHECK(tb_shard_parse("a/b", &k, &n) == LMX_ERR_ARG, "shard a/b");

    /* JSON round trip (the run manifest). */
    tb_selection a, b;
    tb_selection_default(tb, &a);
    CHECK_OK(tb_selection_set_protocol(tb, &a, "zhong"));
    CHECK_OK(tb_selection_subsets(tb, &a, "reality"));
    CHECK_OK(tb_selection_methods(&a, "w-composite,merge"));
    CHECK_OK(tb_selection_seeds(&a, "7,9007199254740992"));
    CHECK_OK(tb_selection_n(tb, &a, "2,5"));
    a.limit = 12;
    cJSON *j = tb_selection_json(tb, &a);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    cJSON *back = s ? cJSON_Parse(s) : NULL;
    CHECK_OK(tb_selection_from_json(tb, back, &b));
    CHECK(b.protocol == a.protocol && b.n_subsets == 1 && b.subsets[0] == 1 && b.n_methods == 2 &&
              b.methods[0] == LMX_METHOD_W_COMPOSITE && b.n_seeds == 2 && b.seeds[1] == 9007199254740992ull &&
              b.n_mask == a.n_mask && b.limit == 12,
          "round trip of %s", s ? s : "");
    cJSON_Delete(back);
    cJSON_free(s);
}

/* ---- custom and broken definitions ----------------------------------------------- */

static char g_dir[256];

static void put(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    CHECK_OK(lmx_write_file_atomic(path, text, strlen(text)));
}

static const char *TB_JSON =
    "{\"format_version\": 1, \"name\": \"mini\", \"subsets\": {\"toy\": {\"lora_info\": \"toy.json\","
    " \"base_model\": \"tiny\", \"vae\": null, \"width\": 64, \"height\": 64, \"steps\": 2, \"cfg\": 5,"
    " \"scheduler\": \"dpm++2m\", \"timestep_spacing\": null, \"lora_scale\": 1, \"switch_steps\": 2,"
    " \"tail_steps\": 1, \"base_prompt\": \"a photo\", \"negative_prompt\": \"blurry\"}},"
    " \"protocols\": {\"one\": {\"seeds\": [5], \"stream\": false}}, \"default_protocol\": \"one\","
    " \"n_values\": [2, 3]}";

static void test_custom(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lmx_tb_plan_%d", (int)getpid());
    mkdir(g_dir, 0777);
    /* Key order is semantic: "animal" comes before "character" here. */
    put("testbed.json", TB_JSON);
    put("toy.json", "{\"animal\": [{\"id\": \"animal_1\", \"name\": \"cat\", \"trigger\": [\"cat\"]},"
                    " {\"id\": \"animal_2\", \"name\": \"dog\", \"trigger\": [\"dog\", \"puppy\"]}],"
                    " \"character\": [{\"id\": \"character_1\", \"name\": \"A\", \"trigger\": [\"alice\"]}],"
                    " \"hat\": [{\"id\": \"hat_1\", \"name\": \"H\", \"trigger\": []}]}");
    tb_testbed *tb = NULL;
    CHECK_OK(tb_load(&tb, g_dir));
    if (tb) {
        tb_selection sel;
        tb_selection_default(tb, &sel);
        tb_plan *p = NULL;
        CHECK_OK(tb_plan_build(&p, tb, &sel));
        /* N=2: (animal) x2, (hat) x1; N=3: (animal, hat) x2 -> 5 sets. */
        CHECK(p && p->n_sets == 5, "custom sets %d", p ? p->n_sets : -1);
        if (p && p->n_sets == 5) {
            CHECK(!strcmp(p->sets[0].slug, "character_1_animal_1") &&
                      !strcmp(p->sets[1].slug, "character_1_animal_2") &&
                      !strcmp(p->sets[2].slug, "character_1_hat_1") &&
                      !strcmp(p->sets[4].slug, "character_1_animal_2_hat_1"),
                  "custom order %s %s %s", p->sets[0].slug, p->sets[2].slug, p->sets[4].slug);
            CHECK(!strcmp(p->sets[1].prompt, "a photo, alice, dog, puppy"), "prompt %s", p->sets[1].prompt);
            CHECK(!strcmp(p->sets[2].prompt, "a photo, alice"), "empty triggers: %s", p->sets[2].prompt);
            CHECK(!strcmp(p->jobs[0].id, "toy/merge_2/character_1_animal_1_1_seed5"), "id %s", p->jobs[0].id);
        }
        tb_plan_free(p);
        tb_free(tb);
    }
    /* Broken definitions: each error names the file and the field. */
    struct {
        const char *file, *text, *expect;
    } bad[] = {
        {"toy.json",
         "{\"character\": [{\"id\": \"char_1\", \"name\": \"A\", \"trigger\": [\"a\"]}], \"x\": "
         "[{\"id\": \"x_1\", \"name\": \"B\", \"trigger\": [\"b\"]}]}",
         "does not start with"},
        {"toy.json", "{\"clothing\": [{\"id\": \"clothing_1\", \"name\": \"A\", \"trigger\": [\"a\"]}]}",
         "no \"character\""},
        {"toy.json",
         "{\"character\": [{\"id\": \"character_1\", \"name\": \"A\", \"trigger\": \"a\"}], \"x\": "
         "[{\"id\": \"x_1\", \"name\": \"B\", \"trigger\": [\"b\"]}]}",
         "trigger"},
        {"toy.json",
         "{\"character\": [{\"id\": \"character_1\", \"name\": \"A\", \"trigger\": [\"a\"], \"w\": 1}],"
         " \"x\": [{\"id\": \"x_1\", \"name\": \"B\", \"trigger\": [\"b\"]}]}",
         "unknown field"},
        {"toy.json",
         "{\"character\": [{\"id\": \"character_1\", \"name\": \"A\", \"trigger\": [\"a\"]}, {\"id\": "
         "\"character_1\", \"name\": \"A\", \"trigger\": [\"a\"]}], \"x\": [{\"id\": \"x_1\", \"name\": "
         "\"B\", \"trigger\": [\"b\"]}]}",
         "used twice"},
        {"toy.json", "{\"character\": [", "not valid JSON"},
        {"toy.json", "{\"character\": [{\"id\": \"character_1\", \"name\": \"A\", \"trigger\": [\"a\"]}]}",
         "needs 3 categories"},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(bad); i++) {
        put("testbed.json", TB_JSON);
        put(bad[i].file, bad[i].text);
        tb = NULL;
        lmx_status st = tb_load(&tb, g_dir);
        CHECK(st != LMX_OK && !tb && strstr(lmx_errmsg(), bad[i].expect) && strstr(lmx_errmsg(), ".json"),
              "broken %zu: expected '%s', got '%s'", i, bad[i].expect, lmx_errmsg());
        tb_free(tb);
    }
    /* A broken testbed.json names its field. */
    put("toy.json",
        "{\"character\": [{\"id\": \"character_1\", \"name\": \"A\", \"trigger\": [\"a\"]}], \"x\": "
        "[{\"id\": \"x_1\", \"name\": \"B\", \"trigger\": [\"b\"]}]}");
    char *t = lmx_strdup(TB_JSON);
    char *w = strstr(t, "\"steps\": 2");
    memcpy(w, "\"steps\": 0", 10);
    put("testbed.json", t);
    lmx_free(t);
    tb = NULL;
    CHECK(tb_load(&tb, g_dir) == LMX_ERR_FORMAT && strstr(lmx_errmsg(), "subsets.toy.steps"), "steps: %s",
          lmx_errmsg());
    tb_free(tb);
    CHECK(tb_load(&tb, "/nonexistent/testbed") == LMX_ERR_IO && strstr(lmx_errmsg(), "/nonexistent/testbed"),
          "missing dir: %s", lmx_errmsg());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* Allocation failure at every allocation of loading and planning: a clean
 * LMX_ERR_NOMEM (the sanitizer build checks for leaks). */
static void test_alloc_faults(void) {
    lmx_fault_set_fail_at(0);
    tb_testbed *tb = NULL;
    tb_plan *p = NULL;
    tb_selection sel;
    long before = lmx_fault_alloc_count();
    CHECK_OK(tb_load(&tb, NULL));
    long n_load = lmx_fault_alloc_count() - before;
    if (!tb) return;
    tb_selection_default(tb, &sel);
    CHECK_OK(tb_selection_methods(&sel, "merge,switch"));
    CHECK_OK(tb_selection_n(tb, &sel, "2"));
    before = lmx_fault_alloc_count();
    CHECK_OK(tb_plan_build(&p, tb, &sel));
    long n_plan = lmx_fault_alloc_count() - before;
    tb_plan_free(p);
    int bad = 0;
    for (long k = 1; k <= n_load + 1 && !bad; k++) {
        tb_testbed *t = NULL;
        lmx_fault_set_fail_at(k);
        lmx_status st = tb_load(&t, NULL);
        lmx_fault_set_fail_at(0);
        if (k <= n_load && (st != LMX_ERR_NOMEM || t)) bad = 1;
        if (bad) CHECK(0, "tb_load, allocation %ld failing: %s (%s)", k, lmx_status_name(st), lmx_errmsg());
        tb_free(t);
    }
    for (long k = 1; k <= n_plan && !bad; k++) {
        p = NULL;
        lmx_fault_set_fail_at(k);
        lmx_status st = tb_plan_build(&p, tb, &sel);
        lmx_fault_set_fail_at(0);
        if (st != LMX_ERR_NOMEM || p) {
            bad = 1;
            CHECK(0, "tb_plan_build, allocation %ld failing: %s", k, lmx_status_name(st));
        }
        tb_plan_free(p);
    }
    CHECK(n_load > 100 && n_plan > 50, "allocation counts %ld %ld", n_load, n_plan);
    tb_free(tb);
}

int main(void) {
    tb_testbed *tb = NULL;
    CHECK_OK(tb_load(&tb, NULL));
    if (tb) {
        test_definition(tb);
        test_reference_order(tb);
        test_nesting_and_names(tb);
        test_zhong_stream(tb);
        test_selection_parsing(tb);
    }
    tb_free(tb);
    test_custom();
    test_alloc_faults();
    return lmx_test_finish();
}
