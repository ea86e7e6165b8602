/*
 * test_compose_schedule.c - the LoRA Switch and W-Switch schedules
 * (src/compose/schedule.c) against every test vector of
 * docs/methods.md §10.1 and §10.3, the rounding rule (D2), the
 * timing variants (D3), the character tail (D4), N = 1 and bad arguments.
 */
#include <math.h>
#include <string.h>

#include "compose/compose.h"
#include "harness.h"

#define T100 100

/* ---- rounding ---------------------------------------------------------------- */

static void test_round(void) {
    static const struct { double x; int even, up; } R[] = {
        {2.5, 2, 3}, {3.5, 4, 4}, {4.5, 4, 5}, {0.5, 0, 1}, {1.5, 2, 2}, {5.0, 5, 5},
        {3.5000000000000004, 4, 4}, {3.9999999999999996, 4, 4}, {0.49999999999999994, 0, 0},
        {2.0833333333333335, 2, 2}, {0.0, 0, 0}, {4.166666666666667, 4, 4},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(R); i++) {
        CHECK(compose_round(R[i].x, 0) == R[i].even, "round_half_even(%.17g) = %d, expected %d", R[i].x,
              compose_round(R[i].x, 0), R[i].even);
        CHECK(compose_round(R[i].x, 1) == R[i].up, "round_half_up(%.17g) = %d, expected %d", R[i].x,
              compose_round(R[i].x, 1), R[i].up);
    }
}

/* ---- W-Switch: §10.1 --------------------------------------------------------- */

typedef struct wrow {
    int n;
    double w[5];
    int b[5];
    int counts[5];
} wrow;

static const wrow ROWS[] = {
    {2, {0.5, 0.5}, {5, 5}, {55, 45}},
    {2, {0.6, 0.4}, {5, 3}, {65, 35}},
    {3, {0.48, 0.2, 0.32}, {5, 2, 3}, {55, 18, 27}},
    {3, {0.4, 0.2, 0.4}, {5, 2, 5}, {45, 16, 39}},
    {3, {0.4, 0.28, 0.32}, {5, 4, 4}, {44, 28, 28}},
    {3, {0.5, 0.05, 0.45}, {5, 1, 4}, {55, 9, 36}},
    {3, {0.35, 0.105, 0.545}, {3, 1, 5}, {38, 11, 51}},
    {3, {1.0 / 3, 1.0 / 3, 1.0 / 3}, {5, 5, 5}, {40, 30, 30}},
    {4, {0.25, 0.25, 0.25, 0.25}, {5, 5, 5, 5}, {30, 25, 25, 20}},
    {5, {0.30, 0.25, 0.15, 0.18, 0.12}, {5, 4, 2, 3, 2}, {35, 24, 12, 18, 11}},
    {5, {0.2, 0.2, 0.2, 0.2, 0.2}, {5, 5, 5, 5, 5}, {25, 20, 20, 20, 15}},
};

typedef struct wstr {
    int n;
    double w[5];
    const char *clean, *shifted;
} wstr;

static const wstr STRS[] = {
    {2, {0.6, 0.4},
     "0000011100000111000001110000011100000111000001110000011100000111000001110000011100000111000001100000",
     "0000001110000011100000111000001110000011100000111000001110000011100000111000001110000011100000110000"},
    {3, {0.48, 0.2, 0.32},
     "0000011222000001122200000112220000011222000001122200000112220000011222000001122200000112220000000000",
     "0000001122200000112220000011222000001122200000112220000011222000001122200000112220000011222000000000"},
    {3, {0.35, 0.105, 0.545},
     "0001222220001222220001222220001222220001222220001222220001222220001222220001222220001222220001200000",
     "0000122222000122222000122222000122222000122222000122222000122222000122222000122222000122222000120000"},
    {5, {0.30, 0.25, 0.15, 0.18, 0.12},
     "0000011112233344000001111223334400000111122333440000011112233344000001111223334400000111122333400000",
     "0000001111223334400000111122333440000011112233344000001111223334400000111122333440000011112233340000"},
    {5, {0.2, 0.2, 0.2, 0.2, 0.2},
     "0000011111222223333344444000001111122222333334444400000111112222233333444440000011111222223333300000",
     "0000001111122222333334444400000111112222233333444440000011111222223333344444000001111122222333330000"},
};

static void sched_strings(const int *sched, int T, char *clean, char *shifted) {
    int act[T100];
    compose_sched_string(sched, T, clean);
    for (int k = 0; k < T; k++) act[k] = compose_sched_at(sched, k, 1);
    compose_sched_string(act, T, shifted);
}

static void test_wswitch_table(void) {
    for (size_t r = 0; r < LMX_ARRAY_LEN(ROWS); r++) {
        const wrow *R = &ROWS[r];
        int b[5] = {0}, sched[T100], counts[5] = {0}, counts_shift[5] = {0};
        CHECK_OK(compose_wswitch_blocks(R->w, R->n, 5, 0, b));
        for (int i = 0; i < R->n; i++)
            CHECK(b[i] == R->b[i], "row %zu: b[%d] = %d, expected %d", r, i, b[i], R->b[i]);
        CHECK_OK(compose_wswitch_sched(b, R->n, T100, 5, 0, sched));
        for (int k = 0; k < T100; k++) {
            counts[sched[k]]++;
            counts_shift[compose_sched_at(sched, k, 1)]++;
        }
        for (int i = 0; i < R->n; i++) {
            CHECK(counts[i] == R->counts[i], "row %zu: LoRA %d runs %d steps, expected %d", r, i, counts[i],
                  R->counts[i]);
            /* sched[0] and sched[T-1] are the character: shifting keeps the counts */
            CHECK(counts_shift[i] == R->counts[i], "row %zu shifted: LoRA %d runs %d steps", r, i, counts_shift[i]);
        }
        for (int k = 95; k < 100; k++) CHECK(sched[k] == 0, "row %zu: tail step %d is LoRA %d", r, k, sched[k]);
    }
    /* the ties: half-up gives 3 and 5 where half-even gives 2 and 4 (D2) */
    int b[3];
    CHECK_OK(compose_wswitch_blocks((const double[]){0.4, 0.2, 0.4}, 3, 5, 1, b));
    CHECK(b[0] == 5 && b[1] == 3 && b[2] == 5, "half-up (0.4,0.2,0.4): %d %d %d", b[0], b[1], b[2]);
    CHECK_OK(compose_wswitch_blocks((const double[]){0.5, 0.05, 0.45}, 3, 5, 1, b));
    CHECK(b[0] == 5 && b[1] == 1 && b[2] == 5, "half-up (0.5,0.05,0.45): %d %d %d", b[0], b[1], b[2]);
    /* 0.5 -> 0 -> raised to 1 */
    CHECK_OK(compose_wswitch_blocks((const double[]){1.0, 0.1}, 2, 5, 0, b));
    CHECK(b[1] == 1, "0.5 -> %d, expected 1", b[1]);
    CHECK_OK(compose_wswitch_blocks((const double[]){1.0, 0.0}, 2, 5, 0, b));
    CHECK(b[1] == 1, "weight 0 -> block %d, expected 1", b[1]);
    /* the order of operations: (w/max)·tau is 3.5000000000000004 -> 4 (τ·w/max would be 3.5 -> 4 too, but
     * 0.28·5/0.4 = 3.5000000000000004; check the exact product is what we round) */
    CHECK(0.28 / 0.4 * 5 == 3.5000000000000004, "double arithmetic of the spec's footnote");
    CHECK(0.32 / 0.4 * 5 == 3.9999999999999996, "double arithmetic of the spec's footnote");
}

static void test_wswitch_strings(void) {
    for (size_t r = 0; r < LMX_ARRAY_LEN(STRS); r++) {
        int b[5], sched[T100];
        char clean[T100 + 1], shifted[T100 + 1];
        CHECK_OK(compose_wswitch_blocks(STRS[r].w, STRS[r].n, 5, 0, b));
        CHECK_OK(compose_wswitch_sched(b, STRS[r].n, T100, 5, 0, sched));
        sched_strings(sched, T100, clean, shifted);
        CHECK(!strcmp(clean, STRS[r].clean), "W-Switch %zu clean:\n  got      %s\n  expected %s", r, clean,
              STRS[r].clean);
        CHECK(!strcmp(shifted, STRS[r].shifted), "W-Switch %zu shifted:\n  got      %s\n  expected %s", r, shifted,
              STRS[r].shifted);
    }
    /* the §10.2 pipeline: PAW raw r = (0.12, 0.03, 0.08) -> w = (0.48, 0.2, 0.32) -> the string above */
    double a[3], w[3];
    compose_paw_weights((const double[]){0.12, 0.03, 0.08}, NULL, 3, a, w);
    int b[3], sched[T100];
    char clean[T100 + 1], shifted[T100 + 1];
    CHECK_OK(compose_wswitch_blocks(w, 3, 5, 0, b));
    CHECK_OK(compose_wswitch_sched(b, 3, T100, 5, 0, sched));
    sched_strings(sched, T100, clean, shifted);
    CHECK(!strcmp(clean, STRS[1].clean), "PAW -> W-Switch: %s", clean);
}

/* ---- LoRA Switch: §10.3 --------------------------------------------------------- */

static const struct { int n; const char *paper, *code; int cp[5], cc[5]; } SW[] = {
    {2, "0000011111000001111100000111110000011111000001111100000111110000011111000001111100000111110000011111",
     "0000001111100000111110000011111000001111100000111110000011111000001111100000111110000011111000001111",
     {50, 50}, {51, 49}},
    {3, "0000011111222220000011111222220000011111222220000011111222220000011111222220000011111222220000011111",
     "0000001111122222000001111122222000001111122222000001111122222000001111122222000001111122222000001111",
     {35, 35, 30}, {36, 34, 30}},
    {4, "0000011111222223333300000111112222233333000001111122222333330000011111222223333300000111112222233333",
     "0000001111122222333330000011111222223333300000111112222233333000001111122222333330000011111222223333",
     {25, 25, 25, 25}, {26, 25, 25, 24}},
    {5, "0000011111222223333344444000001111122222333334444400000111112222233333444440000011111222223333344444",
     "0000001111122222333334444400000111112222233333444440000011111222223333344444000001111122222333334444",
     {20, 20, 20, 20, 20}, {21, 20, 20, 20, 19}},
};

static void test_switch(void) {
    for (size_t r = 0; r < LMX_ARRAY_LEN(SW); r++) {
        int n = SW[r].n, ap[T100], ac[T100], cp[5] = {0}, cc[5] = {0};
        char sp[T100 + 1], sc[T100 + 1];
        for (int k = 0; k < T100; k++) {
            ap[k] = compose_switch_active(k, n, 5, 0);
            ac[k] = compose_switch_active(k, n, 5, 1);
            cp[ap[k]]++;
            cc[ac[k]]++;
        }
        compose_sched_string(ap, T100, sp);
        compose_sched_string(ac, T100, sc);
        CHECK(!strcmp(sp, SW[r].paper), "Switch N=%d paper:\n  got      %s\n  expected %s", n, sp, SW[r].paper);
        CHECK(!strcmp(sc, SW[r].code), "Switch N=%d code:\n  got      %s\n  expected %s", n, sc, SW[r].code);
        for (int i = 0; i < n; i++)
            CHECK(cp[i] == SW[r].cp[i] && cc[i] == SW[r].cc[i], "Switch N=%d counts of %d: %d/%d", n, i, cp[i], cc[i]);
        /* the reference timing is the clean schedule one step late, LoRA 0 at step 0 */
        for (int k = 0; k < T100; k++)
            CHECK(ac[k] == (k == 0 ? 0 : ap[k - 1]), "N=%d: reference timing at step %d", n, k);

        /* W-Switch with equal weights and no tail is Switch (paper) (§8) */
        double w[5];
        int b[5], sched[T100];
        for (int i = 0; i < n; i++) w[i] = 1.0 / n;
        CHECK_OK(compose_wswitch_blocks(w, n, 5, 0, b));
        CHECK_OK(compose_wswitch_sched(b, n, T100, 0, -1, sched));
        CHECK(!memcmp(sched, ap, sizeof ap), "W-Switch equal weights, tail 0 != Switch for N=%d", n);
        int sh[T100];
        for (int k = 0; k < T100; k++) sh[k] = compose_sched_at(sched, k, 1);
        CHECK(!memcmp(sh, ac, sizeof ac), "W-Switch shifted equal weights != Switch code for N=%d", n);
    }
    /* other tau and T */
    CHECK(compose_switch_active(0, 3, 1, 0) == 0 && compose_switch_active(1, 3, 1, 0) == 1 &&
              compose_switch_active(5, 3, 1, 0) == 2,
          "tau 1");
    CHECK(compose_switch_active(1, 3, 1, 1) == 0 && compose_switch_active(2, 3, 1, 1) == 1, "tau 1 reference");
}

/* ---- N = 1, edges, errors -------------------------------------------------------- */

static void test_edges(void) {
    int b[3], sched[10];
    for (int k = 0; k < 50; k++)
        CHECK(compose_switch_active(k, 1, 5, 0) == 0 && compose_switch_active(k, 1, 5, 1) == 0, "N=1 step %d", k);
    CHECK_OK(compose_wswitch_blocks((const double[]){0.7}, 1, 5, 0, b));
    CHECK(b[0] == 5, "N=1 block %d", b[0]);
    CHECK_OK(compose_wswitch_sched(b, 1, 10, 5, 0, sched));
    for (int k = 0; k < 10; k++) CHECK(sched[k] == 0, "N=1 sched[%d] = %d", k, sched[k]);

    /* tail = T: every step is the character; tail 0: no tail; character not LoRA 0 */
    b[0] = 2, b[1] = 2, b[2] = 2;
    CHECK_OK(compose_wswitch_sched(b, 3, 10, 10, 1, sched));
    for (int k = 0; k < 10; k++) CHECK(sched[k] == 1, "tail = T: sched[%d] = %d", k, sched[k]);
    CHECK_OK(compose_wswitch_sched(b, 3, 10, 3, 2, sched));
    char s[11];
    CHECK(!strcmp(compose_sched_string(sched, 10, s), "0011220222"), "tail 3 on LoRA 2: %s", s);
    /* T shorter than one cycle, and than one block */
    CHECK_OK(compose_wswitch_sched((const int[]){5, 5}, 2, 3, 0, -1, sched));
    CHECK(!strcmp(compose_sched_string(sched, 3, s), "000"), "T = 3: %s", s);

    /* errors */
    double nan = NAN;
    CHECK(compose_wswitch_blocks((const double[]){0.5, 0.5}, 2, 0, 0, b) == LMX_ERR_ARG, "tau 0 accepted");
    CHECK(strstr(lmx_errmsg(), "switch-steps"), "tau message: %s", lmx_errmsg());
    CHECK(compose_wswitch_blocks((const double[]){0.5, -0.1}, 2, 5, 0, b) == LMX_ERR_ARG, "negative weight");
    CHECK(compose_wswitch_blocks((const double[]){0.5, nan}, 2, 5, 0, b) == LMX_ERR_ARG, "NaN weight");
    CHECK(compose_wswitch_blocks((const double[]){INFINITY, 1}, 2, 5, 0, b) == LMX_ERR_ARG, "inf weight");
    CHECK(compose_wswitch_blocks((const double[]){0, 0}, 2, 5, 0, b) == LMX_ERR_ARG, "all-zero weights");
    CHECK(compose_wswitch_blocks((const double[]){1}, 0, 5, 0, b) == LMX_ERR_ARG, "n = 0");
    CHECK(compose_wswitch_sched((const int[]){2, 2}, 2, 10, 11, 0, sched) == LMX_ERR_ARG, "tail > T accepted");
    CHECK(strstr(lmx_errmsg(), "tail"), "tail message: %s", lmx_errmsg());
    CHECK(compose_wswitch_sched((const int[]){2, 2}, 2, 10, -1, 0, sched) == LMX_ERR_ARG, "tail < 0 accepted");
    CHECK(compose_wswitch_sched((const int[]){2, 2}, 2, 10, 2, 2, sched) == LMX_ERR_ARG, "tail LoRA 2 of 2");
    CHECK(compose_wswitch_sched((const int[]){2, 0}, 2, 10, 0, -1, sched) == LMX_ERR_ARG, "block 0");
    CHECK(compose_wswitch_sched((const int[]){2, 2}, 2, 0, 0, -1, sched) == LMX_ERR_ARG, "T = 0");

    /* schedule strings beyond 10 LoRAs */
    int many[4] = {9, 10, 35, 62};
    char buf[5];
    CHECK(!strcmp(compose_sched_string(many, 4, buf), "9az?"), "symbols: %s", buf);
}

int main(void) {
    test_round();
    test_wswitch_table();
    test_wswitch_strings();
    test_switch();
    test_edges();
    return lmx_test_finish();
}
