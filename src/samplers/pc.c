/* pc.c - predictor-corrector sampling of the reverse SDE (Song et al. 2021, Algorithms 2-3) in the
 * continuous view of any process: dx = f x dtau + g dW (diffusion_sde), score = -eps_hat / sigma.
 * At each grid time tau_i: K corrector steps, then one predictor step to tau_{i+1}; at the last
 * time the corrector is followed by the denoising step x0_hat instead of a predictor step.
 *
 * Corrector (Langevin with a target signal-to-noise ratio r, Algorithm 5 of the paper):
 *   step = 2 a_i (r ||z|| / ||score||)^2,  x <- x + step score + sqrt(2 step) z,
 * with a_i = (alpha_i / alpha_{i+1})^2 (1 - beta_i for DDPM, 1 for VE). ||z|| and ||score|| are
 * batch means of per-sample norms, as in the reference code: a per-sample step size would depend on
 * the state and bias the chain when samples have few dimensions. So pc samples depend on the batch.
 * Predictors, over h = tau_{i+1} - tau_i < 0:
 *   euler_maruyama:    x <- x + (f x - g^2 score) h + g sqrt(-h) z
 *   reverse_diffusion: x <- (2 - r) x + G^2 score + G z, with the forward step of the grid
 *                      x_i = r x_{i+1} + N(0, G^2): r = alpha_i / alpha_{i+1},
 *                      G^2 = sigma_i^2 - r^2 sigma_{i+1}^2 (Song's discretisation for VP and VE). */
#include <math.h>

#include "algorithms.h"

static void corrector(SamplerRun *r, double tau, double a_ratio, float *eps, float *z) {
  double alpha, sigma;
  diffusion_marginal(r->d, tau, &alpha, &sigma);
  const double snr = r->o->snr;
  for (int k = 0; k < r->o->corrector_steps; k++) {
    r->den->predict_eps(r->den, eps, r->x, r->B, tau);
    sampler_noise(r, z);
    double eps_norm = 0, z_norm = 0; /* batch means of the per-sample norms, as the reference */
    for (int b = 0; b < r->B; b++) {
      const float *e = eps + (size_t)b * r->per_sample, *zb = z + (size_t)b * r->per_sample;
      double e2 = 0, z2 = 0;
      for (size_t j = 0; j < r->per_sample; j++) e2 += (double)e[j] * e[j], z2 += (double)zb[j] * zb[j];
      eps_norm += sqrt(e2) / r->B, z_norm += sqrt(z2) / r->B;
    }
    if (eps_norm == 0.0) continue;
    const double score_norm = eps_norm / sigma, step = 2.0 * a_ratio * (snr * z_norm / score_norm) * (snr * z_norm / score_norm);
    const float ce = (float)(-step / sigma), cz = (float)sqrt(2.0 * step);
    float *x = r->x;
    for (size_t j = 0; j < r->n; j++) x[j] += ce * eps[j] + cz * z[j];
    if (r->cond) sampler_condition_keep(r, tau, z); /* score_sde's inpainter: after every corrector step too */
  }
}

static void predictor(SamplerRun *r, double tau, double tau_next, float *eps, float *z) {
  double a, s, an, sn;
  diffusion_marginal(r->d, tau, &a, &s);
  diffusion_marginal(r->d, tau_next, &an, &sn);
  r->den->predict_eps(r->den, eps, r->x, r->B, tau);
  sampler_noise(r, z);
  float cx, ce, cz; /* x <- cx x + ce eps + cz z */
  if (r->o->predictor == PREDICTOR_EULER_MARUYAMA) {
    double f, g2;
    diffusion_sde(r->d, tau, &f, &g2);
    const double h = tau_next - tau;
    cx = (float)(1.0 + f * h);
    ce = (float)(g2 / s * h); /* -g^2 score h = g^2 eps / sigma h */
    cz = (float)sqrt(g2 * -h);
  } else {
    const double ratio = a / an, G2 = s * s - ratio * ratio * sn * sn;
    cx = (float)(2.0 - ratio);
    ce = (float)(-G2 / s);
    cz = (float)sqrt(G2 > 0.0 ? G2 : 0.0);
  }
  float *x = r->x;
  for (size_t j = 0; j < r->n; j++) x[j] = cx * x[j] + ce * eps[j] + cz * z[j];
}

void pc_step(SamplerRun *r, const double *taus, int i, int steps) {
  float *eps = r->work, *z = r->work + r->n;
  double a, s, an = 1.0, sn;
  diffusion_marginal(r->d, taus[i], &a, &s);
  if (i + 1 < steps) diffusion_marginal(r->d, taus[i + 1], &an, &sn);
  corrector(r, taus[i], (a / an) * (a / an), eps, z);
  if (i + 1 < steps) predictor(r, taus[i], taus[i + 1], eps, z);
  else sampler_denoise(r, taus[i], eps);
}

void sample_pc(SamplerRun *r, const double *taus) {
  for (int i = 0; i < r->o->steps; i++) pc_step(r, taus, i, r->o->steps);
}
