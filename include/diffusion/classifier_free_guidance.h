/* classifier_free_guidance.h - classifier-free guidance (Ho & Salimans 2022) over a class-conditional
 * eps model with a learned null class:
 *   eps = (1 + w) eps(x, y) - w eps(x, null)
 * both terms from ONE batched call of the model on 2B rows (the B images under their labels, then
 * under the null label). With w = 0 the model is called once on the B images and their labels.
 * The VJP is that of the combination: the model gets the upstream vectors (1 + w) v and -w v for its
 * two passes and returns the sum of the two input gradients (the passes share the input x).
 *
 * The model is a LabelledEps: the U-Net (unet_denoiser.h) or an analytic one in tests, so the
 * combination itself is what the analytic tests check. */
#ifndef DIFFUSION_CLASSIFIER_FREE_GUIDANCE_H
#define DIFFUSION_CLASSIFIER_FREE_GUIDANCE_H

#include <stdbool.h>

#include "diffusion/denoiser.h"

typedef struct LabelledEps LabelledEps;
struct LabelledEps {
  /* eps_out (passes * B rows): the B images x, each under `passes` label sets, labels[p * B + b]
   * (labels NULL: an unconditional model, passes 1), in one batched call. var_out (B rows, may be NULL;
   * only for a model with has_var) the variance output of the first pass (denoiser.h). */
  void (*predict)(LabelledEps *self, float *eps_out, float *var_out, const float *x, const int *labels, int B,
                  int passes, double tau);
  /* Optional (NULL when the model cannot): eps_out as predict and vjp_out (B rows) =
   * sum_p (d eps_p / dx)^T v_p for v of passes * B rows. */
  void (*predict_vjp)(LabelledEps *self, float *eps_out, float *vjp_out, const float *x, const float *v,
                      const int *labels, int B, int passes, double tau);
  bool has_var;
  int null_label; /* the label of the unconditional pass */
  void *ctx;
};

typedef struct {
  LabelledEps *model;
  const int *labels; /* (B) the requested classes, or NULL for an unconditional model */
  double guidance;   /* w; 0: the conditional model alone */
  size_t per_sample; /* floats of one image */
  void *scratch;     /* guidance != 0: classifier_free_scratch_bytes(the largest B, per_sample) bytes */
} ClassifierFree;

size_t classifier_free_scratch_bytes(int B, size_t per_sample);

/* The guided denoiser: predict_eps, the VJP where the model has one, and predict_eps_var where it has
 * a variance output (taken from the conditional pass). Each call is one model call and one evaluation. */
Denoiser classifier_free_denoiser(ClassifierFree *ctx);

#endif
