/* denoiser.h - the only view samplers have of a model: predicted noise at (x, tau).
 *
 * Samplers work on x_tau = alpha x0 + sigma eps (diffusion.h) and ask for eps_hat; the score is
 * -eps_hat / sigma and x0_hat = (x - sigma eps_hat) / alpha. Tests plug in analytic denoisers
 * (Gaussian data, mixtures) through the same struct.
 */
#ifndef DIFFUSION_DENOISER_H
#define DIFFUSION_DENOISER_H

#include "autograd/graph.h"
#include "diffusion/diffusion.h"
#include "nn/unet.h"

typedef struct Denoiser Denoiser;
struct Denoiser {
  /* eps_out, x: (B, C, H, W); the same tau for the whole batch. */
  void (*predict_eps)(Denoiser *self, float *eps_out, const float *x, int B, double tau);
  long nfe; /* network evaluations so far (per batch call) */
  void *ctx;
  /* Optional (NULL when the model cannot): eps_out = eps_hat(x, tau) and the vector-Jacobian
   * product vjp_out = (d eps_hat / d x)^T v, both (B, C, H, W); counts one evaluation. */
  void (*predict_eps_vjp)(Denoiser *self, float *eps_out, float *vjp_out, const float *x, const float *v, int B,
                          double tau);
};

typedef struct {
  const Diffusion *diffusion;
  UNet *model;
  Graph *graph;        /* grad mode is switched off for the call */
  const int *labels;   /* (B) or NULL */
} UNetDenoiser;

/* A denoiser backed by a U-Net; converts x0 / v predictions to eps. Provides the VJP (a backward
 * pass through the network w.r.t. its input only; parameter gradients are left untouched). */
Denoiser unet_denoiser(UNetDenoiser *ctx);

#endif
