/* nll.h - negative log-likelihood in bits per dimension.
 *
 * (a) The DDPM variational bound (Ho et al. 2020, eq. 5) of data x0 in [-1, 1] (255 bins):
 *       L = L_T + sum_{t=1}^{T-1} L_t + L_0, in bits/dim (each term the mean over dimensions / ln 2)
 *     L_T = KL(q(x_T | x0) || N(0, I)); L_t = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) with x_t
 *     drawn from q(x_t | x0) (one draw per term) and the model's mean from eps_hat; variance
 *     fixed_small (beta_tilde_t), fixed_large (beta_t) or learned (the model's interpolation; at t = 0
 *     between log beta_0 and log beta_tilde_1); L_0 = -log p(x0 | x_1) of the
 *     discretised Gaussian decoder with log variance log(beta_tilde_1) (both fixed variances), as
 *     improved-diffusion's calc_bpd_loop (including its tanh approximation of the normal CDF).
 *     With n_terms < T - 1, the KL sum is estimated from n_terms stratified timesteps (one uniform
 *     draw in each of n_terms equal strata of 1..T-1, scaled by (T-1)/n_terms).
 * (b) The probability-flow ODE likelihood (Song et al. 2021, appendix D.2) of any model:
 *       log p_0(x) = log p_T(x_T) + int_{tau_min}^{tau_max} div v(x_tau, tau) dtau
 *     integrated with RK45 along the ODE from x at tau_min, div v from the Hutchinson estimator with
 *     one Rademacher probe z per sample (z^T (dv/dx) z, a vector-Jacobian product through the
 *     network). Data are dequantised uniformly: x = (p + u) / 128 - 1, u ~ U[0, 1), and reported on
 *     the [0, 256) scale: bits/dim = -log p(x) / (D ln 2) + 7.
 */
#ifndef DIFFUSE_EVAL_NLL_H
#define DIFFUSE_EVAL_NLL_H

#include <stddef.h>

#include "samplers/sampler.h"

/* Bits/dim of the bound's terms for B images x0 (B, per_sample), data on the 255-bin grid of
 * [-1, 1]. out_bpd (B): the bound. terms (T + 1, B) or NULL: terms[t] = L_t for t = 0..T-1
 * (0 where not evaluated), terms[T] = L_T. Noise draw t is the noise of x_t. work: nll_vlb_work_floats.
 * VARIANCE_LEARNED needs den->predict_eps_var. */
size_t nll_vlb_work_floats(int B, size_t per_sample);
void nll_vlb(const Diffusion *d, Denoiser *den, NoiseSource *noise, const float *x0, int B, size_t per_sample,
             AncestralVariance variance, int n_terms, double *out_bpd, double *terms, float *work);

/* Log-likelihood log p(x) (nats, per sample, B) of x (B, per_sample) at tau_min via the ODE;
 * probes are Rademacher from (seed, stream_base + b). den must provide predict_eps_vjp.
 * out_xT (B, per_sample) or NULL receives the end point x_T, out_log_prior (B) or NULL the prior
 * term log N(x_T; 0, prior_std^2) included in out_logp (the model's p_T is only close to it).
 * work: nll_ode_work_floats. Returns the network evaluations. */
size_t nll_ode_work_floats(int B, size_t per_sample);
/* Uniform dequantisation for the ODE likelihood, in place: x (B, per_sample) in [-1, 1] on the
 * 255-bin grid (p / 127.5 - 1) becomes (p + u) / 128 - 1 with u ~ U[0, 1) from stream
 * (seed, stream_base + b), element j its j-th draw. */
void nll_dequantize(float *x, int B, size_t per_sample, uint64_t seed, uint64_t stream_base);
/* log p(x) in nats of a dequantised image -> bits/dim on the [0, 256) scale: -log p / (D ln 2) + 7. */
double nll_ode_bits_per_dim(double log_p, size_t per_sample);
long nll_ode(const Diffusion *d, Denoiser *den, const float *x, int B, size_t per_sample, double rtol, double atol,
             uint64_t seed, uint64_t stream_base, double *out_logp, float *out_xT, double *out_log_prior, float *work);

#endif
