/* ode.c - the probability-flow ODE (Song et al. 2021, eq. 13) in the continuous view of any process:
 *   dx/dtau = f x - (g^2 / 2) score = f x + (g^2 / (2 sigma)) eps_hat(x, tau),
 * integrated from the first grid time down to the last, then the denoising step.
 *   euler: fixed steps over the grid; heun: the trapezoidal corrector on top (2 evaluations a step);
 *   rk45: adaptive Dormand-Prince 5(4) (rk45.h) from tau_max to tau_min, the error norm over the
 *         whole batch; the grid is not used.
 * sampler_ode_solve runs in either direction, so x_T = encode(x_0) and decode(encode(x)) = x. */
#include <math.h>
#include <stdlib.h>

#include "algorithms.h"
#include "core/error.h"
#include "samplers/rk45.h"

static void velocity(SamplerRun *r, float *v, const float *x, double tau) {
  double alpha, sigma, f, g2;
  diffusion_marginal(r->d, tau, &alpha, &sigma);
  diffusion_sde(r->d, tau, &f, &g2);
  r->den->predict_eps(r->den, v, x, r->B, tau);
  const float cx = (float)f, ce = (float)(0.5 * g2 / sigma);
  for (size_t j = 0; j < r->n; j++) v[j] = cx * x[j] + ce * v[j];
}

/* Fixed-step Euler or Heun along taus[0..m-1]. work: 3n floats. */
static void fixed_steps(SamplerRun *r, const double *taus, int m, bool heun) {
  float *v1 = r->work, *v2 = r->work + r->n, *xp = r->work + 2 * r->n, *x = r->x;
  for (int i = 0; i + 1 < m; i++) {
    const double h = taus[i + 1] - taus[i];
    velocity(r, v1, x, taus[i]);
    if (!heun) {
      for (size_t j = 0; j < r->n; j++) x[j] += (float)h * v1[j];
      continue;
    }
    for (size_t j = 0; j < r->n; j++) xp[j] = x[j] + (float)h * v1[j];
    velocity(r, v2, xp, taus[i + 1]);
    for (size_t j = 0; j < r->n; j++) x[j] += (float)(0.5 * h) * (v1[j] + v2[j]);
  }
}

static void velocity_field(void *ctx, float *v, const float *x, double tau) { velocity(ctx, v, x, tau); }

static void rk45(SamplerRun *r, double tau0, double tau1) {
  rk45_integrate(velocity_field, r, r->x, r->n, tau0, tau1, r->o->rtol, r->o->atol, r->work);
}

long sampler_ode_solve(const SamplerOptions *o, const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample,
                       double tau0, double tau1, float *work) {
  SamplerRun r = {o, d, den, NULL, x, B, per_sample, (size_t)B * per_sample, work, 0, NULL};
  const long nfe0 = den->nfe;
  if (o->method == ODE_RK45) {
    rk45(&r, tau0, tau1);
  } else {
    CHECK(o->steps >= 2);
    double *taus = xmalloc((size_t)o->steps * sizeof(double));
    for (int i = 0; i < o->steps; i++) taus[i] = tau0 + (tau1 - tau0) * i / (o->steps - 1);
    fixed_steps(&r, taus, o->steps, o->method == ODE_HEUN);
    free(taus);
  }
  return den->nfe - nfe0;
}

void sample_ode(SamplerRun *r, const double *taus) {
  const int steps = r->o->steps;
  if (r->o->method == ODE_RK45) rk45(r, diffusion_tau_max(r->d), diffusion_tau_min(r->d));
  else fixed_steps(r, taus, steps, r->o->method == ODE_HEUN);
  const double tau_end = r->o->method == ODE_RK45 ? diffusion_tau_min(r->d) : taus[steps - 1];
  sampler_denoise(r, tau_end, r->work);
}
