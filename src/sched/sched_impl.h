/*
 * sched_impl.h - internals shared by sched_tables.c (set_timesteps) and
 * sched.c (step). Not for use outside src/sched.
 */
#ifndef LMX_SCHED_IMPL_H
#define LMX_SCHED_IMPL_H

#include "sched/sched.h"

struct sched {
    sched_config cfg;      /* private copy (owns trained_betas) */
    int N;                 /* num_train_timesteps */
    float *betas, *alphas, *acp, *sigma_table; /* [N] each */
    float final_alpha_cumprod;                 /* DDIM / PNDM */

    int n_steps;           /* num_inference_steps as asked */
    int n_calls;           /* len(timesteps) */
    float *t_unet;         /* [n_calls] timesteps as the UNet gets them */
    int64_t *t_int;        /* [n_calls] integer timesteps (DPM, DDIM, PNDM) */
    float *sigmas;         /* [n_sigmas] DPM / Euler / Euler-a */
    int n_sigmas;
    float init_noise_sigma;
    int n_prk;             /* PNDM: the first n_prk calls are Runge-Kutta steps */

    /* sampling state (reset by sched_reset) */
    int step_index;
    int lower_order_nums;  /* DPM */
    int n_hist;            /* DPM: data predictions held (<= solver_order) */
    int n_ets;             /* PNDM: stored model outputs (<= 4) */
    int has_cur_sample;    /* PNDM */

    /* buffers, allocated at the first step for n_elem elements */
    int64_t n_elem;
    float *hist[3];        /* DPM: model_outputs, oldest first */
    float *ets[4];         /* PNDM: ets, oldest first */
    float *cur_sample;     /* PNDM */
    float *cur_mo;         /* PNDM (PRK) */
    float *tmp;            /* noise / combined model output */
};

/* set_timesteps: fills t_unet, t_int, sigmas, n_calls, init_noise_sigma,
 * n_prk from s->cfg and the tables (already built). */
lmx_status sched_set_timesteps(sched *s, int n_steps);

/* torch.log / torch.exp of an fp32 0-dim tensor (MKL VML in the reference;
 * correctly rounded here). */
float sched_tlogf(float x);
float sched_texpf(float x);

#endif /* LMX_SCHED_IMPL_H */
