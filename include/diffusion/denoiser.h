/* denoiser.h - the only view samplers have of a model: predicted noise at (x, tau).
 *
 * Samplers work on x_tau = alpha x0 + sigma eps (diffusion.h) and ask for eps_hat; the score is
 * -eps_hat / sigma and x0_hat = (x - sigma eps_hat) / alpha. Tests plug in analytic denoisers
 * (Gaussian data, mixtures) through the same struct; the U-Net behind it is in unet_denoiser.h, so
 * samplers include nothing of the model.
 */
#ifndef DIFFUSION_DENOISER_H
#define DIFFUSION_DENOISER_H

#include <stddef.h>

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
  /* Optional (NULL unless the model learns its variance, Nichol & Dhariwal 2021): eps_out as
   * predict_eps and var_out (B, C, H, W) the network's variance output v (nominally in [-1, 1]): the
   * model's log variance at a DDPM step is (1 + v) / 2 log beta + (1 - v) / 2 log beta_tilde of the
   * step's own beta and posterior beta_tilde. Counts one evaluation. */
  void (*predict_eps_var)(Denoiser *self, float *eps_out, float *var_out, const float *x, int B, double tau);
};

#endif
