/* ddim.c - deterministic DDIM; see ddim.h. */
#include "samplers/ddim.h"

#include <math.h>
#include <stddef.h>

#include "core/error.h"

static double tau_at(const Diffusion *d, int i, int steps, DdimSpacing spacing) {
  if (d->discrete)
    return spacing == DDIM_UNIFORM ? (double)((long)i * d->n_levels / steps)
                                   : round((double)(i + 1) * d->n_levels / steps) - 1.0;
  const double t_min = diffusion_tau_min(d);
  return t_min + (1.0 - t_min) * (double)i / (steps - 1);
}

void ddim_sample(const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample, int steps, DdimSpacing spacing,
                 float *work) {
  CHECK(steps >= 1 && (d->discrete ? steps <= d->n_levels : steps >= 2));
  const size_t n = (size_t)B * per_sample;
  for (int i = steps - 1; i >= 0; i--) {
    const double tau = tau_at(d, i, steps, spacing);
    double a, s, a_next = 1.0, s_next = 0.0;
    diffusion_marginal(d, tau, &a, &s);
    if (i > 0) diffusion_marginal(d, tau_at(d, i - 1, steps, spacing), &a_next, &s_next);
    den->predict_eps(den, work, x, B, tau);
    const float ca = (float)(a_next / a), cs = (float)(s_next - a_next * s / a);
    for (size_t k = 0; k < n; k++) x[k] = ca * x[k] + cs * work[k];
  }
}
