/*
 * loramix.h - the whole public API of loramix.
 *
 * loramix runs Stable Diffusion 1.x checkpoints on the CPU, in C11, with
 * numbers that match diffusers/transformers, and composes several LoRA
 * adapters while sampling (Merge, Switch, Composite, W-Switch, W-Composite).
 *
 * Conventions
 *   - Every fallible call returns an lmx_status. On failure, lmx_errmsg()
 *     returns a message naming the culprit (file, tensor key, shape, flag).
 *     The message is thread-local: read it on the thread that got the error.
 *   - Objects with invariants are opaque handles created by the _load/_create calls
 *     and released by the matching _free call; passing NULL to it is a no-op.
 *   - Parameter structs are plain; get defaults from the *_default() getter
 *     and change the fields you care about.
 *   - Thread safety: a loaded model is immutable and may be shared between
 *     threads; a context (lmx_ctx) belongs to one thread at a time.
 *   - Nothing in the library calls exit() or abort() on bad input.
 *
 * Example: generate one image.
 *
 *   #include <loramix.h>
 *   #include <stdio.h>
 *
 *   int main(void) {
 *       lmx_model *m = NULL;
 *       if (lmx_model_load(&m, "models/tiny-sd", NULL) != LMX_OK) {
 *           fprintf(stderr, "loramix: %s\n", lmx_errmsg());
 *           return 1;
 *       }
 *       lmx_gen_params p = lmx_gen_params_default();
 *       p.prompt = "a photo of a cat";
 *       p.seed = 42;
 *       lmx_image img = {0};
 *       if (lmx_generate(m, &p, &img, 1) != LMX_OK)
 *           fprintf(stderr, "loramix: %s\n", lmx_errmsg());
 *       else
 *           lmx_image_save_png(&img, "cat.png", &p);
 *       lmx_image_free(&img);
 *       lmx_model_free(m);
 *       return 0;
 *   }
 */
#ifndef LORAMIX_H
#define LORAMIX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------- */

typedef enum lmx_status {
    LMX_OK = 0,
    LMX_ERR_ARG,         /* a bad argument or flag value                   */
    LMX_ERR_IO,          /* a file could not be opened, read or written    */
    LMX_ERR_FORMAT,      /* a file is malformed, truncated or hostile      */
    LMX_ERR_SHAPE,       /* a tensor has the wrong shape or is missing     */
    LMX_ERR_UNSUPPORTED, /* valid input that loramix does not handle (yet) */
    LMX_ERR_NOMEM,       /* an allocation failed                           */
    LMX_ERR_BACKEND,     /* the compute backend (oneDNN) reported an error */
    LMX_ERR_INTERNAL,    /* a bug in loramix                               */
    LMX_STATUS_COUNT
} lmx_status;

/* "ok", "bad argument", ... for a status; never NULL. */
const char *lmx_status_name(lmx_status st);

/* The message of the last error on this thread ("" if none). */
const char *lmx_errmsg(void);

/* Library version as "MAJOR.MINOR.PATCH". */
const char *lmx_version(void);

/* ---- logging ----------------------------------------------------------- */

typedef enum lmx_log_level {
    LMX_LOG_ERROR = 0,
    LMX_LOG_WARN,
    LMX_LOG_INFO,
    LMX_LOG_DEBUG
} lmx_log_level;

/* Messages at or below `level` go to the callback (default: stderr with a
 * "loramix: warning: " style prefix). Pass cb = NULL to restore the default. */
typedef void (*lmx_log_fn)(lmx_log_level level, const char *msg, void *user);
void lmx_log_set(lmx_log_level level, lmx_log_fn cb, void *user);

/* ---- threads ----------------------------------------------------------- */

/* Number of threads used by the compute kernels (0 = all cores). */
void lmx_set_threads(int n_threads);
int lmx_get_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* LORAMIX_H */
