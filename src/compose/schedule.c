/*
 * schedule.c - the per-step LoRA schedules of LoRA Switch and W-Switch
 * (docs/methods.md §5, §8, test vectors §10.1 and §10.3).
 *
 * Switch (Zhong et al.): the paper's i(t) = floor(((t-1) mod N·tau) / tau)
 * in 0-based steps, or the reference code's callback timing, which switches
 * after the step and so runs one step late with a first block of tau + 1.
 *
 * W-Switch (Tsoumplekas et al., callbacks.py create_weighted_schedule):
 * block lengths b_i = max(1, round((w_i / max w) · tau)) with numpy's
 * half-to-even rounding, the blocks cycled over T steps, the last `tail`
 * steps given to the character LoRA. The order of operations is the code's:
 * (w_i / max) first, then · tau, in double (the other order can land on the
 * other side of a .5 tie).
 */
#include <math.h>

#include "compose/compose.h"

int compose_round(double x, int half_up) {
    if (!half_up) return (int)rint(x); /* default rounding mode: ties to even */
    double f = floor(x);
    return (int)(x - f >= 0.5 ? f + 1.0 : f); /* x - f is exact here */
}

int compose_switch_active(int k, int n, int tau, int reference) {
    if (n <= 1 || tau < 1 || k < 0) return 0;
    if (!reference) return (int)(((int64_t)k % ((int64_t)n * tau)) / tau);
    if (k <= tau) return 0;
    return (int)(((int64_t)(k - 1) / tau) % n);
}

lmx_status compose_wswitch_blocks(const double *w, int n, int tau, int half_up, int *b) {
    if (n < 1) return lmx_err(LMX_ERR_ARG, "w-switch: no LoRA to schedule");
    if (tau < 1) return lmx_err(LMX_ERR_ARG, "--switch-steps: expected >= 1, got %d", tau);
    double mx = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(w[i]) || w[i] < 0)
            return lmx_err(LMX_ERR_ARG, "w-switch: weight %d is %g; expected a finite number >= 0", i, w[i]);
        if (w[i] > mx) mx = w[i];
    }
    if (!(mx > 0)) return lmx_err(LMX_ERR_ARG, "w-switch: every weight is 0; cannot size the blocks");
    for (int i = 0; i < n; i++) {
        double r = w[i] / mx;
        r = r * (double)tau;
        int v = compose_round(r, half_up);
        b[i] = v < 1 ? 1 : v;
    }
    return LMX_OK;
}

lmx_status compose_wswitch_sched(const int *b, int n, int T, int tail, int tail_lora, int *sched) {
    if (n < 1) return lmx_err(LMX_ERR_ARG, "w-switch: no LoRA to schedule");
    if (T < 1) return lmx_err(LMX_ERR_ARG, "w-switch: expected >= 1 steps, got %d", T);
    for (int i = 0; i < n; i++)
        if (b[i] < 1) return lmx_err(LMX_ERR_ARG, "w-switch: block %d has length %d; expected >= 1", i, b[i]);
    if (tail < 0 || tail > T)
        return lmx_err(LMX_ERR_ARG, "--tail-steps: expected 0..%d (the number of steps), got %d", T, tail);
    if (tail > 0 && (tail_lora < 0 || tail_lora >= n))
        return lmx_err(LMX_ERR_ARG, "w-switch: tail LoRA %d is not one of the %d LoRAs", tail_lora, n);
    int k = 0;
    for (int j = 0; k < T; j = (j + 1) % n)
        for (int c = 0; c < b[j] && k < T; c++) sched[k++] = j;
    for (k = T - tail; k < T; k++) sched[k] = tail_lora;
    return LMX_OK;
}

char *compose_sched_string(const int *active, int T, char *buf) {
    static const char SYM[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int k = 0; k < T; k++) {
        int a = active[k];
        buf[k] = a >= 0 && a < (int)sizeof SYM - 1 ? SYM[a] : '?';
    }
    buf[T] = 0;
    return buf;
}
