/* test_rng.c - torch's CPU generator (src/sched/rng.c), bit for bit.
 *
 * Checks: the test vectors of docs/numerics.md §11 (raw MT19937
 * words, rand, the double path, the 16-value block on both paths, tails of
 * SD-sized latents) and the goldens of reference/gen_sched.py
 * (tests/fixtures/sched/rng.safetensors): full latents [1,4,8,8],
 * [2,4,8,8], [1,4,64,64], [1,4,128,96], sizes 1..20 and 33, several seeds,
 * a sequence of mixed draws on one generator (stream continuation, the
 * cached double-path normal, reseeding). The main goldens are torch's own
 * dispatch on the reference machine (AVX512 capability -> the AVX2 kernel,
 * RNG_PATH_AVX2); default_* / avx2_* were drawn with ATEN_CPU_CAPABILITY
 * set to default (RNG_PATH_PORTABLE) / avx2. Every float is compared
 * bit-exactly; the max ulp distance is printed with LMX_TEST_VERBOSE=1 or
 * on failure. */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "sched/rng.h"

/* Bit-exact comparison; counts a failure and reports the worst element. */
static int cmp_bits(const char *what, const float *a, const float *r, int64_t n) {
    int64_t bad = 0, worst = -1, max_ulp = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &r[i], 4) != 0) {
            bad++;
            int64_t u = lmx_ulp_dist(a[i], r[i]);
            if (u > max_ulp || worst < 0) max_ulp = u, worst = i;
        }
    }
    lmx_test_checks++;
    if (bad || lmx_test_verbose())
        fprintf(bad ? stderr : stdout, "%s %s: n=%lld differing=%lld max_ulp=%lld%s",
                bad ? "FAIL" : "ok  ", what, (long long)n, (long long)bad, (long long)max_ulp,
                bad ? "" : "\n");
    if (bad) {
        fprintf(stderr, " worst[%lld] ours=%.9g ref=%.9g\n", (long long)worst, a[worst], r[worst]);
        lmx_test_failures++;
    }
    return bad == 0;
}

static void test_engine(void) {
    rng_state r;
    rng_init(&r, 42, RNG_PATH_AVX2);
    uint32_t w0 = rng_u32(&r), w1 = rng_u32(&r), w2 = rng_u32(&r);
    CHECK(w0 == 0x5fe1dc66u && w1 == 0xcbea3db3u && w2 == 0xf362035cu, "seed 42 raw: %08x %08x %08x",
          w0, w1, w2);
    /* std::mt19937 default seed 5489: the 10000th output is 4123659995. */
    rng_init(&r, 5489, RNG_PATH_PORTABLE);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = rng_u32(&r);
    CHECK(v == 4123659995u, "mt19937(5489) 10000th = %u", v);
    /* Only the low 32 bits of the seed matter (at::mt19937(uint64_t)). */
    rng_state a, b;
    rng_init(&a, ((uint64_t)1 << 40) + 5, RNG_PATH_PORTABLE);
    rng_init(&b, 5, RNG_PATH_PORTABLE);
    CHECK(rng_u32(&a) == rng_u32(&b), "seed uses the low 32 bits");

    static const float rand10[10] = {0.8823f, 0.9150f, 0.3829f, 0.9593f, 0.3904f,
                                     0.6009f, 0.2566f, 0.7936f, 0.9408f, 0.1332f};
    float x[16];
    rng_init(&r, 42, RNG_PATH_PORTABLE);
    rng_rand(&r, x, 10);
    for (int i = 0; i < 10; i++) CHECK(fabsf(x[i] - rand10[i]) < 6e-5f, "rand[%d] = %.6f", i, x[i]);

    static const float randn6[6] = {0.3367f, 0.1288f, 0.2345f, 0.2303f, -1.1229f, -0.1863f};
    rng_init(&r, 42, RNG_PATH_PORTABLE);
    rng_randn(&r, x, 6);
    for (int i = 0; i < 6; i++) CHECK(fabsf(x[i] - randn6[i]) < 6e-5f, "randn(6)[%d] = %.6f", i, x[i]);
}

static void test_spec_vectors(void) {
    /* docs/numerics.md §11: seed 42 randn(16), fp32 to 9 digits, both paths. */
    static const float portable[16] = {
        1.92691505f,  1.48728418f,  0.900717199f,   -2.10552144f, 0.678418458f, -1.23454499f,
        -0.0430674814f, -1.60466695f, -0.752136171f, 1.64872289f,  -0.392478645f, -1.40360665f,
        -0.727881253f, -0.559429884f, -0.768838942f, 0.76244539f};
    static const float avx2[16] = {
        1.92691529f,  1.48728406f,  0.900717199f,   -2.10552096f, 0.678418458f, -1.23454487f,
        -0.0430674776f, -1.60466695f, -0.752135277f, 1.64872301f,  -0.392478645f, -1.40360713f,
        -0.727881312f, -0.559430182f, -0.768838882f, 0.76244539f};
    float x[16];
    rng_state r;
    rng_init(&r, 42, RNG_PATH_PORTABLE);
    rng_randn(&r, x, 16);
    cmp_bits("spec seed 42 randn(16) portable", x, portable, 16);
    rng_init(&r, 42, RNG_PATH_AVX2);
    rng_randn(&r, x, 16);
    cmp_bits("spec seed 42 randn(16) avx2", x, avx2, 16);

    /* 6-decimal first blocks of seeds 43, 44, 111 (portable). */
    static const struct {
        uint64_t seed;
        float v[16];
    } blocks[] = {
        {43, {-0.016604f, -0.466795f, 2.090897f, 0.614903f, -0.562096f, -0.414251f, -1.300092f,
              -0.101196f, -1.099946f, -0.468654f, -0.840040f, 0.686832f, -0.067765f, -0.088595f,
              -0.312354f, -0.355219f}},
        {44, {1.586196f, 1.125303f, 1.830590f, 0.112888f, 0.497611f, 1.500967f, -0.141318f,
              -0.352180f, -0.164290f, -1.165066f, -0.408877f, -0.525169f, -1.315261f, 0.603124f,
              -0.812394f, 0.591963f}},
        {111, {-1.263403f, -0.239124f, 0.319807f, -0.771165f, 0.039494f, -0.323414f, -2.044916f,
               0.678751f, -0.958290f, -2.202150f, 0.748264f, -0.048845f, -1.411718f, 1.314629f,
               -1.082227f, 0.155500f}},
    };
    for (size_t b = 0; b < LMX_ARRAY_LEN(blocks); b++) {
        rng_init(&r, blocks[b].seed, RNG_PATH_PORTABLE);
        rng_randn(&r, x, 16);
        for (int i = 0; i < 16; i++)
            CHECK(fabsf(x[i] - blocks[b].v[i]) <= 5.01e-7f + 1e-7f * fabsf(x[i]),
                  "seed %llu [%d]: %.7f vs %.6f", (unsigned long long)blocks[b].seed, i, x[i],
                  blocks[b].v[i]);
    }

    /* Last two values of SD-sized latents (6 decimals). */
    static const struct {
        uint64_t seed;
        int64_t n;
        float a, b;
    } tails[] = {{42, 4 * 128 * 96, 0.928502f, 1.004920f},
                 {42, 4 * 64 * 64, 0.972810f, -0.293406f},
                 {111, 4 * 64 * 64, -0.353184f, -1.011878f},
                 {111, 4 * 128 * 96, 0.792193f, -0.785830f}};
    float *big = lmx_malloc(4 * 128 * 96 * sizeof(float));
    for (size_t k = 0; big && k < LMX_ARRAY_LEN(tails); k++) {
        rng_init(&r, tails[k].seed, RNG_PATH_PORTABLE);
        rng_randn(&r, big, tails[k].n);
        CHECK(fabsf(big[tails[k].n - 2] - tails[k].a) < 6e-7f && fabsf(big[tails[k].n - 1] - tails[k].b) < 6e-7f,
              "seed %llu n=%lld tail %.6f %.6f", (unsigned long long)tails[k].seed,
              (long long)tails[k].n, big[tails[k].n - 2], big[tails[k].n - 1]);
    }
    /* fp32 of the last value, both paths (§11). */
    rng_init(&r, 42, RNG_PATH_PORTABLE);
    rng_randn(&r, big, 4 * 128 * 96);
    CHECK(big[4 * 128 * 96 - 1] == 1.00492001f, "portable last %.9g", big[4 * 128 * 96 - 1]);
    rng_init(&r, 42, RNG_PATH_AVX2);
    rng_randn(&r, big, 4 * 128 * 96);
    CHECK(big[4 * 128 * 96 - 1] == 1.00491965f, "avx2 last %.9g", big[4 * 128 * 96 - 1]);
    lmx_free(big);
}

static void test_stream(void) {
    /* The k-th randn(n) of one stream = elements [k n, (k+1) n) of randn(K n)
     * when n is a multiple of 16 (docs/numerics.md §11, testbed shared stream). */
    enum { N = 4 * 8 * 8, K = 3 };
    float one[K * N], parts[K * N];
    rng_state r;
    rng_init(&r, 111, RNG_PATH_PORTABLE);
    rng_randn(&r, one, K * N);
    rng_init(&r, 111, RNG_PATH_PORTABLE);
    for (int k = 0; k < K; k++) rng_randn(&r, parts + k * N, N);
    cmp_bits("stream: K draws == one draw", parts, one, K * N);

    /* Seeding clears the cached double-path normal. */
    float a[2], b[2];
    rng_init(&r, 3, RNG_PATH_PORTABLE);
    rng_randn(&r, a, 1); /* caches r*sin */
    rng_seed(&r, 3);
    rng_randn(&r, a + 1, 1);
    rng_init(&r, 3, RNG_PATH_PORTABLE);
    rng_randn(&r, b, 1);
    CHECK(!memcmp(a + 1, b, 4), "seed clears the cached normal");
    /* ...and without reseeding the second draw is the cached value. */
    rng_randn(&r, b + 1, 1);
    CHECK(memcmp(b, b + 1, 4) != 0, "second small draw is the cached sine");
    CHECK(r.has_normal == 0, "cache consumed");
    rng_randn(&r, b, 0); /* n = 0 draws nothing */
    CHECK(r.has_normal == 0, "empty draw");

    /* rng_seed initialises a state from garbage, with the default path. */
    rng_state g;
    memset(&g, 0x5a, sizeof g);
    rng_seed(&g, 42);
    rng_init(&r, 42, RNG_PATH_AVX2);
    float ga[32], gb[32];
    rng_randn(&g, ga, 32);
    rng_randn(&r, gb, 32);
    CHECK(g.path == RNG_PATH_AVX2 && !memcmp(ga, gb, sizeof ga), "rng_seed on garbage");

    rng_path p;
    CHECK_OK(rng_path_parse("avx2", &p));
    CHECK(p == RNG_PATH_AVX2 && !strcmp(rng_path_name(p), "avx2"), "path parse");
    CHECK(rng_path_parse("sse", &p) == LMX_ERR_ARG && strstr(lmx_errmsg(), "sse"), "bad path named");
}

static void test_goldens(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/sched/rng.safetensors"));
    if (!f) return;
    const char *pk = st_meta_get(f, "packages");
    if (lmx_test_verbose() && pk) printf("golden packages: %s\n", pk);
    /* The main tensors: torch's dispatch on an x86 machine with AVX2 or
     * AVX-512 runs the AVX2 kernel. */
    const char *cap = st_meta_get(f, "cpu_capability");
    CHECK(cap && (!strcmp(cap, "AVX512") || !strcmp(cap, "AVX2")),
          "goldens drawn on capability %s; the main tensors assume an x86 AVX2/AVX512 machine",
          cap ? cap : "?");
    char name[128];
    float *buf = lmx_malloc(4 * 128 * 96 * sizeof(float));
    int n_tensors = st_count(f);
    int n_checked = 0;
    for (int i = 0; i < n_tensors && buf; i++) {
        const st_tensor *t = st_at(f, i);
        const char *nm = t->name;
        rng_path path = RNG_PATH_AVX2;
        const char *base = nm;
        if (!strncmp(nm, "avx2_", 5)) base = nm + 5;
        else if (!strncmp(nm, "default_", 8)) base = nm + 8, path = RNG_PATH_PORTABLE;
        unsigned long long seed = 0;
        int n = 0;
        int64_t numel = t->numel;
        float *ref = lmx_golden_f32(f, nm, NULL);
        if (!ref) continue;
        rng_state r;
        if (sscanf(base, "randn_n%d_s%llu", &n, &seed) == 2) {
            rng_init(&r, seed, path);
            rng_randn(&r, buf, n);
            cmp_bits(nm, buf, ref, numel);
            n_checked++;
        } else if (sscanf(base, "randn_s%llu_%127s", &seed, name) == 2) {
            rng_init(&r, seed, path);
            rng_randn(&r, buf, numel);
            cmp_bits(nm, buf, ref, numel);
            n_checked++;
        } else if (sscanf(base, "tail1024_s%llu_", &seed) == 1) {
            rng_init(&r, seed, path);
            rng_randn(&r, buf, 4 * 128 * 96);
            cmp_bits(nm, buf + 4 * 128 * 96 - 1024, ref, 1024);
            n_checked++;
        } else if (!strcmp(base, "rand10_s42")) {
            rng_init(&r, 42, path);
            rng_rand(&r, buf, 10);
            cmp_bits(nm, buf, ref, 10);
            n_checked++;
        } else if (!strcmp(base, "sequence_s7")) {
            /* The op list of gen_sched.py SEQUENCE, on one generator. */
            static const struct {
                char op;
                int n;
            } seq[] = {{'n', 5},   {'n', 16}, {'n', 3}, {'u', 2}, {'n', 1},  {'n', 33}, {'n', 256},
                       {'n', 7},   {'s', 7},  {'n', 3}, {'n', 20}, {'n', 1}, {'n', 1}};
            rng_init(&r, 7, path);
            int64_t o = 0;
            for (size_t k = 0; k < LMX_ARRAY_LEN(seq); k++) {
                if (seq[k].op == 's') rng_seed(&r, (uint64_t)seq[k].n);
                else if (seq[k].op == 'u') rng_rand(&r, buf + o, seq[k].n), o += seq[k].n;
                else rng_randn(&r, buf + o, seq[k].n), o += seq[k].n;
            }
            CHECK(o == numel, "sequence length %lld vs %lld", (long long)o, (long long)numel);
            if (o == numel) cmp_bits(nm, buf, ref, numel);
            n_checked++;
        } else {
            CHECK(0, "unknown golden tensor %s", nm);
        }
        lmx_free(ref);
    }
    CHECK(n_checked >= 100, "only %d golden tensors checked", n_checked);
    lmx_free(buf);
    st_close(f);
}

int main(void) {
    test_engine();
    test_spec_vectors();
    test_stream();
    test_goldens();
    return lmx_test_finish();
}
