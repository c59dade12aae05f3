/* ode.c - the probability-flow ODE (Song et al. 2021, eq. 13) in the continuous view of any process:
 *   dx/dtau = f x - (g^2 / 2) score = f x + (g^2 / (2 sigma)) eps_hat(x, tau),
 * integrated from the first grid time down to the last, then the denoising step.
 *   euler: fixed steps over the grid; heun: the trapezoidal corrector on top (2 evaluations a step);
 *   rk45: adaptive Dormand-Prince 5(4) (Dormand & Prince 1980, the coefficients of scipy's RK45)
 *         from tau_max to tau_min with the error norm RMS(err / (atol + rtol max(|x|, |x_new|))) over
 *         the whole batch, step factor 0.9 err^(-1/5) clamped to [0.2, 10]; the grid is not used.
 * sampler_ode_solve runs in either direction, so x_T = encode(x_0) and decode(encode(x)) = x. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms.h"
#include "core/error.h"

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

/* Dormand-Prince 5(4) tableau. */
static const double DP_C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double DP_A[7][6] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
};
/* fifth-order weights are DP_A[6]; E = b5 - b4 gives the error estimate */
static const double DP_E[7] = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

/* Adaptive RK45 from tau0 to tau1 (either direction). work: 8n floats. */
static void rk45(SamplerRun *r, double tau0, double tau1) {
  const size_t n = r->n;
  float *k[7], *xs = r->work + 7 * n, *x = r->x;
  for (int s = 0; s < 7; s++) k[s] = r->work + (size_t)s * n;
  const double span = tau1 - tau0, dir = span > 0 ? 1.0 : -1.0;
  double tau = tau0, h = 0.01 * span;
  velocity(r, k[0], x, tau);
  while (dir * (tau1 - tau) > 1e-12 * fabs(span)) {
    if (dir * (tau + h - tau1) > 0) h = tau1 - tau;
    for (int s = 1; s < 7; s++) {
      for (size_t j = 0; j < n; j++) {
        double acc = 0;
        for (int q = 0; q < s; q++) acc += DP_A[s][q] * k[q][j];
        xs[j] = x[j] + (float)(h * acc);
      }
      velocity(r, k[s], xs, tau + DP_C[s] * h);
    }
    /* xs holds the fifth-order solution (stage 7 is evaluated at it: FSAL) */
    double err2 = 0;
    for (size_t j = 0; j < n; j++) {
      double e = 0;
      for (int s = 0; s < 7; s++) e += DP_E[s] * k[s][j];
      const double scale = r->o->atol + r->o->rtol * fmax(fabs(x[j]), fabs(xs[j]));
      err2 += (h * e / scale) * (h * e / scale);
    }
    const double err = sqrt(err2 / (double)n);
    const double factor = err == 0.0 ? 10.0 : fmin(10.0, fmax(0.2, 0.9 * pow(err, -0.2)));
    if (err <= 1.0) {
      tau += h;
      memcpy(x, xs, n * sizeof(float));
      memcpy(k[0], k[6], n * sizeof(float));
    }
    h *= err <= 1.0 ? factor : fmin(1.0, factor);
    CHECK(fabs(h) > 1e-12 * fabs(span)); /* cannot happen for a finite velocity field */
  }
}

long sampler_ode_solve(const SamplerOptions *o, const Diffusion *d, Denoiser *den, float *x, int B, size_t per_sample,
                       double tau0, double tau1, float *work) {
  SamplerRun r = {o, d, den, NULL, x, B, per_sample, (size_t)B * per_sample, work, 0};
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
