/* ancestral.c - DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) for discrete DDPM processes:
 *   x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t) + s_t z,
 * s_t^2 = beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) ("fixed_small"), beta_t
 * ("fixed_large") or, per element, the model's exp((1 + v) / 2 log beta_t + (1 - v) / 2 log beta_tilde_t)
 * ("learned", Nichol & Dhariwal 2021: improved-diffusion's p_mean_variance with learned_range); no
 * noise at the last step. Written as the posterior mean q(x_{t-1} | x_t, x0_hat)
 * (the same update); with clip_x0, x0_hat is clipped to [-1, 1] first. On a subset of the timesteps
 * (iDDPM's respacing, Nichol & Dhariwal 2021) the process is the one whose alpha_bar are those of the
 * subset: beta_i = 1 - abar_{t_i} / abar_{t_{i+1}} between consecutive visited timesteps, and a
 * learned variance interpolates that process's beta and beta_tilde (as improved-diffusion's respace). */
#include <math.h>

#include "algorithms.h"
#include "core/error.h"

void ancestral_step(SamplerRun *r, const double *taus, int i, int steps) {
  const Diffusion *d = r->d;
  CHECK(d->kind == DIFFUSION_DDPM);
  float *eps = r->work, *z = r->work + r->n, *v = r->work + 2 * r->n;
  const bool learned = r->o->variance == VARIANCE_LEARNED;
  const int t = (int)taus[i], prev = i + 1 < steps ? (int)taus[i + 1] : -1;
  const double ab = d->alphas_cumprod[t], ab_prev = prev >= 0 ? d->alphas_cumprod[prev] : 1.0;
  /* the table's beta where no timestep is skipped, so a full run uses the schedule exactly */
  const double beta = prev == t - 1 ? d->betas[t] : 1.0 - ab / ab_prev;
  const double var_t = r->o->variance == VARIANCE_FIXED_LARGE ? beta : beta * (1.0 - ab_prev) / (1.0 - ab);
  const bool last = i + 1 == steps;
  const float s = last ? 0.0f : (float)sqrt(var_t);
  /* posterior mean coefficients: mu = c0 * x0_hat + ct * x_t */
  const float c0 = (float)(sqrt(ab_prev) * beta / (1.0 - ab)), ct = (float)(sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab));
  const float inv_sqrt_ab = (float)(1.0 / sqrt(ab)), sqrt_1m_ab = (float)sqrt(1.0 - ab);
  if (learned) r->den->predict_eps_var(r->den, eps, v, r->x, r->B, (double)t);
  else r->den->predict_eps(r->den, eps, r->x, r->B, (double)t);
  if (!last) sampler_noise(r, z);
  const bool clip = r->o->clip_x0;
  const float log_beta = (float)log(beta), log_tilde = (float)log(beta * (1.0 - ab_prev) / (1.0 - ab));
  float *x = r->x;
  for (size_t k = 0; k < r->n; k++) {
    float x0 = (x[k] - sqrt_1m_ab * eps[k]) * inv_sqrt_ab;
    if (clip) x0 = fminf(1.0f, fmaxf(-1.0f, x0));
    const float sk = last || !learned ? s : expf(0.5f * (log_tilde + 0.5f * (1.0f + v[k]) * (log_beta - log_tilde)));
    x[k] = c0 * x0 + ct * x[k] + (last ? 0.0f : sk * z[k]);
  }
}

void sample_ancestral(SamplerRun *r, const double *taus, int steps) {
  for (int i = 0; i < steps; i++) ancestral_step(r, taus, i, steps);
}
