/* classifier_guidance.h - classifier guidance (Dhariwal & Nichol 2021; Song et al. 2021, sec. 5):
 * sampling p_tau(x) p_tau(y | x)^s with the score grad log p_tau(x) + s grad log p_tau(y | x), i.e.
 *   eps' = eps_hat - s sigma(tau) grad_x log p(y | x_tau)
 * (ADM's condition_score, for every process: the score is -eps / sigma). With s = 1 and exact terms this
 * is the score of the noised conditional p_tau(x | y). The gradient comes from a ClassifierGrad: the
 * noise-conditional U-Net classifier (model.classifier) through its input gradient, or an exact one in
 * tests. ADM's ancestral sampler shifts the mean by s Sigma grad (condition_mean) instead; through eps
 * the shift is s beta / sqrt(1 - beta) grad, the same to first order in beta (Sigma = beta, fixed_large).
 */
#ifndef DIFFUSION_CLASSIFIER_GUIDANCE_H
#define DIFFUSION_CLASSIFIER_GUIDANCE_H

#include "autograd/graph.h"
#include "diffusion/denoiser.h"
#include "diffusion/diffusion.h"
#include "nn/unet.h"

typedef struct ClassifierGrad ClassifierGrad;
struct ClassifierGrad {
  /* grad_out (B, per-sample) = grad_x log p(labels[b] | x_b at tau); counts one evaluation */
  void (*grad_log_prob)(ClassifierGrad *self, float *grad_out, const float *x, const int *labels, int B, double tau);
  long nfe;
  void *ctx;
};

typedef struct {
  Denoiser *inner;
  ClassifierGrad *classifier;
  const Diffusion *diffusion;
  const int *labels; /* (B): the requested classes */
  double scale;      /* s */
  size_t per_sample; /* floats of one image */
  float *grad;       /* scratch: the largest batch's B * per_sample floats */
} ClassifierGuided;

/* The guided denoiser (predict_eps, and predict_eps_var when the inner one has it; no VJP). */
Denoiser classifier_guided_denoiser(ClassifierGuided *ctx);

/* A U-Net classifier (model.classifier) as a ClassifierGrad: one forward and a backward to the input,
 * on (c_in x, tau) as it was trained (classifier_training_loss). */
typedef struct {
  const Diffusion *diffusion; /* the classifier's own process */
  UNet *model;
  Graph *graph;
} UNetClassifier;
ClassifierGrad unet_classifier_grad(UNetClassifier *ctx);

/* Whether two processes have the same marginals (alpha, sigma) over the same tau range, so a classifier
 * trained on one guides a model of the other. 0, or -1 + a message. */
int classifier_process_matches(const Diffusion *model, const Diffusion *classifier, char *err, size_t errlen);

#endif
