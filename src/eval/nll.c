/* nll.c - bits/dim from the DDPM variational bound and from the probability-flow ODE; see nll.h.
 * The bound's formulas follow improved-diffusion (gaussian_diffusion.py: normal_kl,
 * discretized_gaussian_log_likelihood, _vb_terms_bpd with clip_denoised=True, calc_bpd_loop). */
#include "eval/nll.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/gaussian.h"
#include "core/rng.h"
#include "samplers/rk45.h"

#define STRATA_STREAM 0x57A7000000000000ull

/* Bits/dim of the term at timestep t (t = 0: decoder) for every sample, x_t from noise draw t. The
 * model's log variance: fixed, or learned as (1 + v) / 2 log beta_t + (1 - v) / 2 log beta_tilde_t
 * with beta_tilde_1 for t = 0 (improved-diffusion's learned_range). */
static void vlb_term(const Diffusion *d, Denoiser *den, NoiseSource *noise, const float *x0, int B, size_t per,
                     AncestralVariance variance, int t, double *bpd, float *work) {
  const size_t n = (size_t)B * per;
  float *z = work, *xt = work + n, *eps = work + 2 * n, *v = work + 3 * n;
  noise->fill(noise, z, B, per, t);
  const double ab = d->alphas_cumprod[t], ab_prev = t > 0 ? d->alphas_cumprod[t - 1] : 1.0, beta = d->betas[t];
  const double sa = sqrt(ab), s1 = sqrt(1.0 - ab);
  for (size_t i = 0; i < n; i++) xt[i] = (float)(sa * x0[i] + s1 * z[i]);
  if (variance == VARIANCE_LEARNED) den->predict_eps_var(den, eps, v, xt, B, (double)t);
  else den->predict_eps(den, eps, xt, B, (double)t);
  const double c0 = sqrt(ab_prev) * beta / (1.0 - ab), ct = sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab);
  /* beta_tilde_1 stands in for the zero posterior variance at t = 0 ("clipped" log variance) */
  const double bt1 = d->betas[1] * (1.0 - d->alphas_cumprod[0]) / (1.0 - d->alphas_cumprod[1]);
  const double post_lv = t > 0 ? log(beta * (1.0 - ab_prev) / (1.0 - ab)) : log(bt1);
  const double fixed_lv = t > 0 && variance == VARIANCE_FIXED_LARGE ? log(beta) : post_lv, max_lv = log(beta);
  for (int b = 0; b < B; b++) {
    double acc = 0;
    for (size_t j = 0; j < per; j++) {
      const size_t i = (size_t)b * per + j;
      double x0_hat = (xt[i] - s1 * eps[i]) / sa;
      x0_hat = fmin(1.0, fmax(-1.0, x0_hat));
      const double model_mean = c0 * x0_hat + ct * xt[i];
      const double model_lv = variance == VARIANCE_LEARNED ? post_lv + 0.5 * (v[i] + 1.0) * (max_lv - post_lv) : fixed_lv;
      const double diff = t == 0 ? x0[i] - model_mean : c0 * x0[i] + ct * xt[i] - model_mean;
      acc += gaussian_vlb_term(t == 0, x0[i], diff, post_lv, model_lv, NULL, NULL);
    }
    bpd[b] = acc / (double)per / M_LN2;
  }
}

size_t nll_vlb_work_floats(int B, size_t per_sample) { return 4 * (size_t)B * per_sample; }

void nll_vlb(const Diffusion *d, Denoiser *den, NoiseSource *noise, const float *x0, int B, size_t per_sample,
             AncestralVariance variance, int n_terms, double *out_bpd, double *terms, float *work) {
  CHECK(d->kind == DIFFUSION_DDPM && d->n_levels >= 2);
  CHECK(variance != VARIANCE_LEARNED || den->predict_eps_var);
  const int T = d->n_levels;
  if (n_terms <= 0 || n_terms > T - 1) n_terms = T - 1;
  double *term = xmalloc((size_t)B * sizeof(double));
  if (terms) memset(terms, 0, (size_t)(T + 1) * B * sizeof(double));
  /* prior L_T */
  const double ab_T = d->alphas_cumprod[T - 1];
  for (int b = 0; b < B; b++) {
    double acc = 0;
    for (size_t j = 0; j < per_sample; j++)
      acc += gaussian_kl(sqrt(ab_T) * x0[(size_t)b * per_sample + j], log(1.0 - ab_T), 0.0, NULL, NULL);
    out_bpd[b] = acc / (double)per_sample / M_LN2;
    if (terms) terms[(size_t)T * B + b] = out_bpd[b];
  }
  /* decoder L_0 and the KL terms, all or one per stratum of 1..T-1 */
  for (int k = -1; k < n_terms; k++) {
    int t = 0;
    double weight = 1.0;
    if (k >= 0) {
      const int lo = 1 + (int)((long)k * (T - 1) / n_terms), hi = 1 + (int)((long)(k + 1) * (T - 1) / n_terms);
      weight = hi - lo;
      t = lo + (n_terms == T - 1 ? 0 : (int)(rng_uniform(noise->seed, STRATA_STREAM, (uint64_t)k) * (float)(hi - lo)));
      if (t >= hi) t = hi - 1;
    }
    vlb_term(d, den, noise, x0, B, per_sample, variance, t, term, work);
    for (int b = 0; b < B; b++) {
      out_bpd[b] += weight * term[b];
      if (terms) terms[(size_t)t * B + b] = term[b];
    }
  }
  free(term);
}

/* ---- ODE likelihood ---- */

typedef struct {
  const Diffusion *d;
  Denoiser *den;
  int B;
  size_t per, n;
  float *z, *eps, *vjp; /* (n) each */
} OdeLikelihood;

/* y = [x (n), delta log p (B)]: dx = v(x), d delta_b = div v ~ z^T (dv/dx) z. */
static void augmented_field(void *ctx, float *dy, const float *y, double tau) {
  OdeLikelihood *o = ctx;
  double alpha, sigma, f, g2;
  diffusion_marginal(o->d, tau, &alpha, &sigma);
  diffusion_sde(o->d, tau, &f, &g2);
  const double ce = 0.5 * g2 / sigma; /* v = f x + ce eps_hat */
  o->den->predict_eps_vjp(o->den, o->eps, o->vjp, y, o->z, o->B, tau);
  for (size_t i = 0; i < o->n; i++) dy[i] = (float)(f * y[i] + ce * o->eps[i]);
  for (int b = 0; b < o->B; b++) {
    double zjz = 0; /* z^T J_eps z */
    for (size_t j = 0; j < o->per; j++) zjz += (double)o->z[(size_t)b * o->per + j] * o->vjp[(size_t)b * o->per + j];
    dy[o->n + b] = (float)(f * (double)o->per + ce * zjz); /* z^T (f I) z = f D for Rademacher z */
  }
}

size_t nll_ode_work_floats(int B, size_t per_sample) {
  const size_t n = (size_t)B * per_sample;
  return rk45_work_floats(n + (size_t)B) + (n + (size_t)B) + 3 * n;
}

long nll_ode(const Diffusion *d, Denoiser *den, const float *x, int B, size_t per_sample, double rtol, double atol,
             uint64_t seed, uint64_t stream_base, double *out_logp, float *out_xT, double *out_log_prior, float *work) {
  CHECK(den->predict_eps_vjp != NULL);
  const size_t n = (size_t)B * per_sample;
  float *y = work, *z = y + n + B, *eps = z + n, *vjp = eps + n, *rk = vjp + n;
  memcpy(y, x, n * sizeof(float));
  memset(y + n, 0, (size_t)B * sizeof(float));
  for (int b = 0; b < B; b++) rng_fill_rademacher(z + (size_t)b * per_sample, per_sample, seed, stream_base + (uint64_t)b, 0);
  OdeLikelihood ctx = {d, den, B, per_sample, n, z, eps, vjp};
  const long evals = rk45_integrate(augmented_field, &ctx, y, n + (size_t)B, diffusion_tau_min(d), diffusion_tau_max(d),
                                    rtol, atol, rk);
  const double s = diffusion_prior_std(d);
  for (int b = 0; b < B; b++) {
    double sq = 0;
    for (size_t j = 0; j < per_sample; j++) sq += (double)y[(size_t)b * per_sample + j] * y[(size_t)b * per_sample + j];
    const double log_prior = -0.5 * sq / (s * s) - 0.5 * (double)per_sample * log(2.0 * M_PI * s * s);
    out_logp[b] = log_prior + y[n + b];
    if (out_log_prior) out_log_prior[b] = log_prior;
  }
  if (out_xT) memcpy(out_xT, y, n * sizeof(float));
  return evals;
}

void nll_dequantize(float *x, int B, size_t per_sample, uint64_t seed, uint64_t stream_base) {
  for (int b = 0; b < B; b++)
    for (size_t j = 0; j < per_sample; j++) {
      float *v = &x[(size_t)b * per_sample + j];
      const float p = roundf((*v + 1.0f) * 127.5f), u = rng_uniform(seed, stream_base + (uint64_t)b, j);
      *v = (p + u) / 128.0f - 1.0f;
    }
}

double nll_ode_bits_per_dim(double log_p, size_t per_sample) { return -log_p / ((double)per_sample * M_LN2) + 7.0; }
