/* objective.c - build the diffusion training loss in an autograd graph; see objective.h. */
#include "diffusion/objective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/rng.h"

uint64_t train_stream(long step, int sample, TrainStreamPurpose purpose) {
  return ((uint64_t)step << 32) | ((uint64_t)sample << 3) | (uint64_t)purpose;
}

#define LIKELIHOOD_GRID 4096

/* lambda(t) / sigma^2 = g^2 / sigma^2: the likelihood weight on the eps MSE. */
static double likelihood_density(const Diffusion *d, double t) {
  double a, s, f, g2;
  diffusion_marginal(d, t, &a, &s);
  diffusion_sde(d, t, &f, &g2);
  return g2 / (s * s);
}

int loss_weighting_init(LossWeighting *w, const Diffusion *d, const char *name, double gamma, char *err, size_t errlen) {
  memset(w, 0, sizeof *w);
  w->gamma = gamma;
  if (!strcmp(name, "none")) return 0;
  if (!strcmp(name, "min_snr")) {
    if (d->kind == DIFFUSION_EDM)
      return errorf(err, errlen, "train.loss_weighting: min_snr does not apply to type edm, whose loss has its own "
                                 "weighting lambda(sigma) = 1 / c_out^2");
    if (!(gamma > 0.0)) return errorf(err, errlen, "train.min_snr_gamma must be > 0");
    w->kind = WEIGHTING_MIN_SNR;
    return 0;
  }
  if (!strcmp(name, "likelihood")) {
    if (d->kind != DIFFUSION_VPSDE && d->kind != DIFFUSION_SUBVPSDE && d->kind != DIFFUSION_VESDE)
      return errorf(err, errlen, "train.loss_weighting: likelihood weighting is for the continuous SDEs (vpsde, "
                                 "subvpsde, vesde), not type %s",
                    d->cfg.type);
    if (!(d->cfg.t_eps > 0.0))
      return errorf(err, errlen, "train.loss_weighting: likelihood weighting needs diffusion.t_eps > 0 (g^2 / sigma^2 "
                                 "is not integrable at t = 0)");
    w->kind = WEIGHTING_LIKELIHOOD;
    w->n = LIKELIHOOD_GRID;
    w->t = xmalloc((size_t)(w->n + 1) * sizeof(double));
    w->f = xmalloc((size_t)(w->n + 1) * sizeof(double));
    w->cdf = xmalloc((size_t)(w->n + 1) * sizeof(double));
    const double lo = diffusion_tau_min(d), hi = diffusion_tau_max(d);
    for (int k = 0; k <= w->n; k++) {
      w->t[k] = k == w->n ? hi : lo * pow(hi / lo, (double)k / w->n);
      w->f[k] = likelihood_density(d, w->t[k]);
    }
    w->cdf[0] = 0.0;
    for (int k = 0; k < w->n; k++) w->cdf[k + 1] = w->cdf[k] + 0.5 * (w->t[k + 1] - w->t[k]) * (w->f[k] + w->f[k + 1]);
    w->total = w->cdf[w->n];
    return 0;
  }
  return errorf(err, errlen, "train.loss_weighting: '%s' is not one of none, min_snr, likelihood", name);
}

void loss_weighting_free(LossWeighting *w) {
  free(w->t);
  free(w->f);
  free(w->cdf);
  memset(w, 0, sizeof *w);
}

/* The segment k with v_k <= x < v_{k+1} (v ascending, n + 1 values). */
static int segment_of(const double *v, int n, double x) {
  int lo = 0, hi = n; /* v[lo] <= x < v[hi] */
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v[mid] <= x) lo = mid;
    else hi = mid;
  }
  return lo;
}

double loss_weighting_sample_tau(const LossWeighting *w, const Diffusion *d, double u) {
  if (w->kind != WEIGHTING_LIKELIHOOD) return diffusion_sample_tau(d, u);
  const double m = u * w->total;
  const int k = segment_of(w->cdf, w->n, m);
  /* the density is f_k + (f_{k+1} - f_k) x / width at t_k + x: solve a x^2 + b x = mass left (stable root) */
  const double width = w->t[k + 1] - w->t[k], a = (w->f[k + 1] - w->f[k]) / (2.0 * width), b = w->f[k];
  const double rest = m - w->cdf[k], x = 2.0 * rest / (b + sqrt(fmax(0.0, b * b + 4.0 * a * rest)));
  return fmin(w->t[k + 1], w->t[k] + x);
}

double loss_weighting_weight(const LossWeighting *w, const Diffusion *d, double tau) {
  if (w->kind == WEIGHTING_NONE) return 1.0;
  if (w->kind == WEIGHTING_LIKELIHOOD) { /* lambda / sigma^2 over the density tau was drawn from, times that of uniform t */
    const int k = segment_of(w->t, w->n, tau);
    const double x = (tau - w->t[k]) / (w->t[k + 1] - w->t[k]), p = (w->f[k] + x * (w->f[k + 1] - w->f[k])) / w->total;
    return likelihood_density(d, tau) / (p * (diffusion_tau_max(d) - diffusion_tau_min(d)));
  }
  double a, s, c_in, c_x, c_f;
  diffusion_marginal(d, tau, &a, &s);
  diffusion_network_io(d, tau, &c_in, &c_x, &c_f);
  const double snr = a * a / (s * s), to_x0 = s * c_f / a;
  return fmin(snr, w->gamma) * to_x0 * to_x0;
}

Tensor *diffusion_loss_at(const Diffusion *d, const LossWeighting *w, UNet *m, Graph *g, Tensor *x0, const double *tau,
                          Tensor *noise, const int *labels) {
  CHECK(tensor_same_shape(x0, noise));
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  float *coef = arena_alloc(&g->arena, (size_t)B * 4 * sizeof(float)); /* host: per-sample scalars */
  float *label = arena_alloc(&g->arena, (size_t)B * sizeof(float));
  float *weight = arena_alloc(&g->arena, (size_t)B * sizeof(float));
  for (int b = 0; b < B; b++) {
    double alpha, sigma, c_in, c_x, c_f, t_x0, t_noise;
    diffusion_marginal(d, tau[b], &alpha, &sigma);
    diffusion_network_io(d, tau[b], &c_in, &c_x, &c_f);
    diffusion_network_target(d, tau[b], &t_x0, &t_noise);
    label[b] = (float)diffusion_label(d, tau[b]);
    weight[b] = (float)loss_weighting_weight(w, d, tau[b]);
    float *c = coef + 4 * b;
    c[0] = (float)(c_in * alpha), c[1] = (float)(c_in * sigma); /* the network's input c_in x_t */
    c[2] = (float)t_x0, c[3] = (float)t_noise;                   /* target = c[2] x0 + c[3] noise */
  }
  const int coef_shape[2] = {B, 4};
  Tensor *c = graph_tensor_upload(g, 2, coef_shape, coef);
  Tensor *t = graph_tensor_upload(g, 1, &B, label);
  Tensor *xt = graph_tensor(g, x0->ndim, x0->shape);
  Tensor *target = graph_tensor(g, x0->ndim, x0->shape);
  g->backend->ops->forward_mix(g->backend, xt->data, target->data, x0->data, noise->data, c->data, B, M);
  Tensor *net = unet_forward(m, g, xt, t, labels);
  if (w->kind == WEIGHTING_NONE) return ag_mse(g, net, target);
  return ag_weighted_mse(g, net, target, graph_tensor_upload(g, 1, &B, weight));
}

Tensor *diffusion_training_loss(const Diffusion *d, const LossWeighting *w, UNet *m, Graph *g, Tensor *x0,
                                const int *labels, uint64_t seed, long step, int first_sample) {
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  double *tau = arena_alloc(&g->arena, (size_t)B * sizeof(double));
  Tensor *noise = graph_tensor(g, x0->ndim, x0->shape);
  for (int b = 0; b < B; b++) {
    const int s = first_sample + b;
    tau[b] = loss_weighting_sample_tau(w, d, rng_uniform(seed, train_stream(step, s, STREAM_TAU), 0));
    g->backend->ops->fill_normal(g->backend, mem_floats_at(noise->data, (size_t)b * M), M, seed,
                                 train_stream(step, s, STREAM_NOISE), 0);
  }
  g->dropout_seed = seed ^ train_stream(step, 0, STREAM_DROPOUT);
  g->first_sample = (uint64_t)first_sample;
  return diffusion_loss_at(d, w, m, g, x0, tau, noise, labels);
}
