/* objective.c - build the diffusion training loss in an autograd graph; see objective.h. */
#include "diffusion/objective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/gaussian.h"
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

/* ---- the objective: loss kind, weighting, and the importance sampler of L_vlb ---- */

static void history_refresh(LossHistory *h) {
  const int K = LOSS_HISTORY_PER_T, T = h->T;
  h->warm = true;
  for (int t = 0; t < T && h->warm; t++) h->warm = h->table[(size_t)t * (1 + K)] == (float)K;
  double sum = 0.0;
  for (int t = 0; t < T; t++) {
    double ms = 0.0;
    for (int k = 0; k < K && h->warm; k++) {
      const double l = h->table[(size_t)t * (1 + K) + 1 + k];
      ms += l * l / K;
    }
    h->p[t] = sqrt(ms);
    sum += h->p[t];
  }
  if (!h->warm || !(sum > 0.0) || !isfinite(sum))
    for (int t = 0; t < T; t++) h->p[t] = 1.0 / T;
  else
    for (int t = 0; t < T; t++) h->p[t] = (1.0 - LOSS_HISTORY_UNIFORM) * h->p[t] / sum + LOSS_HISTORY_UNIFORM / T;
  h->cdf[0] = 0.0;
  for (int t = 0; t < T; t++) h->cdf[t + 1] = h->cdf[t] + h->p[t];
  h->cdf[T] = fmax(h->cdf[T], 1.0); /* u < 1 always lands in a segment */
}

int objective_init(Objective *o, const Diffusion *d, const char *loss, const char *weighting, double gamma, char *err,
                   size_t errlen) {
  memset(o, 0, sizeof *o);
  static const char *const losses[] = {"simple", "hybrid", "vlb"};
  int k = -1;
  for (int i = 0; i < 3; i++)
    if (!strcmp(loss, losses[i])) k = i;
  if (k < 0) return errorf(err, errlen, "train.loss: '%s' is not one of simple, hybrid, vlb", loss);
  o->loss = (LossKind)k;
  const bool learned = d->cfg.learn_sigma;
  if (o->loss != LOSS_SIMPLE && !learned)
    return errorf(err, errlen, "train.loss: %s trains the model's variance, so it needs diffusion.learn_sigma true",
                  loss);
  if (o->loss == LOSS_SIMPLE && learned)
    return errorf(err, errlen, "diffusion.learn_sigma: set train.loss to hybrid or vlb (L_simple does not train the "
                               "variance output)");
  if (o->loss == LOSS_VLB && strcmp(weighting, "none"))
    return errorf(err, errlen, "train.loss_weighting: vlb weights its terms by importance sampling of t; set "
                               "train.loss_weighting to none");
  if (loss_weighting_init(&o->weighting, d, weighting, gamma, err, errlen)) return -1;
  if (o->loss == LOSS_VLB) {
    LossHistory *h = &o->history;
    h->T = d->n_levels;
    h->table = xcalloc((size_t)h->T * (1 + LOSS_HISTORY_PER_T), sizeof(float));
    h->p = xmalloc((size_t)h->T * sizeof(double));
    h->cdf = xmalloc((size_t)(h->T + 1) * sizeof(double));
    history_refresh(h);
  }
  return 0;
}

void objective_free(Objective *o) {
  loss_weighting_free(&o->weighting);
  free(o->history.table);
  free(o->history.p);
  free(o->history.cdf);
  memset(o, 0, sizeof *o);
}

void objective_record_terms(Objective *o, const double *tau, const double *terms, int n) {
  if (o->loss != LOSS_VLB) return;
  LossHistory *h = &o->history;
  const int K = LOSS_HISTORY_PER_T;
  for (int i = 0; i < n; i++) {
    const int t = (int)tau[i];
    CHECK(t >= 0 && t < h->T);
    float *row = h->table + (size_t)t * (1 + K);
    const int count = (int)row[0];
    if (count == K) {
      memmove(row + 1, row + 2, (size_t)(K - 1) * sizeof(float));
      row[K] = (float)terms[i];
    } else {
      row[1 + count] = (float)terms[i];
      row[0] = (float)(count + 1);
    }
  }
  history_refresh(h);
}

int objective_history_loaded(Objective *o, char *err, size_t errlen) {
  LossHistory *h = &o->history;
  const int K = LOSS_HISTORY_PER_T;
  for (int t = 0; t < h->T; t++) {
    const float *row = h->table + (size_t)t * (1 + K);
    if (!(row[0] >= 0.0f && row[0] <= (float)K && row[0] == floorf(row[0])))
      return errorf(err, errlen, "the L_vlb loss history of t = %d holds count %g, not an integer in [0, %d]", t,
                    (double)row[0], K);
    for (int k = 0; k < K; k++)
      if (!isfinite(row[1 + k]))
        return errorf(err, errlen, "the L_vlb loss history of t = %d holds %g, not a finite bound term", t,
                      (double)row[1 + k]);
  }
  history_refresh(h);
  return 0;
}

static double objective_sample_tau(const Objective *o, const Diffusion *d, double u) {
  if (o->loss != LOSS_VLB) return loss_weighting_sample_tau(&o->weighting, d, u);
  return segment_of(o->history.cdf, o->history.T, u);
}

/* The bound's per-sample coefficients (core/gaussian.h) at integer t of a learned-variance DDPM. */
static void vlb_coefficients(const Diffusion *d, const Objective *o, int t, float *c) {
  const double ab = d->alphas_cumprod[t], ab_prev = t > 0 ? d->alphas_cumprod[t - 1] : 1.0, beta = d->betas[t];
  const double sa = sqrt(ab), s1 = sqrt(1.0 - ab);
  const double c0 = sqrt(ab_prev) * beta / (1.0 - ab), ct = sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab);
  double c_in, c_x, c_f;
  diffusion_network_io(d, t, &c_in, &c_x, &c_f);
  CHECK(c_in == 1.0); /* DDPM: the network sees x_t itself */
  /* eps_hat = c_x x_t + c_f F, x0_hat = (x_t - s1 eps_hat) / sa, model mean = c0 x0_hat + ct x_t */
  const double m_x = c0 * (1.0 - s1 * c_x) / sa + ct, m_f = -c0 * s1 * c_f / sa;
  const double bt1 = d->betas[1] * (1.0 - d->alphas_cumprod[0]) / (1.0 - d->alphas_cumprod[1]);
  const double post_lv = t > 0 ? log(beta * (1.0 - ab_prev) / (1.0 - ab)) : log(bt1);
  c[VLB_C0] = (float)c0;
  c[VLB_DX] = (float)(ct - m_x);
  c[VLB_MF] = (float)m_f;
  c[VLB_LV1] = (float)post_lv;
  c[VLB_MIN_LOG] = (float)post_lv; /* improved-diffusion's posterior_log_variance_clipped */
  c[VLB_MAX_LOG] = (float)log(beta);
  c[VLB_DECODER] = t == 0 ? 1.0f : 0.0f;
  /* hybrid: lambda T with lambda = 0.001; vlb: T L_t importance-weighted by 1 / (T p_t) */
  c[VLB_WEIGHT] = (float)(o->loss == LOSS_VLB ? 1.0 / o->history.p[t] : d->n_levels / 1000.0);
}

Tensor *diffusion_loss_at(const Diffusion *d, const Objective *o, UNet *m, Graph *g, Tensor *x0, const double *tau,
                          Tensor *noise, const int *labels, Tensor **terms) {
  CHECK(tensor_same_shape(x0, noise));
  CHECK(m->cfg.learn_sigma == (o->loss != LOSS_SIMPLE));
  const LossWeighting *w = &o->weighting;
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
  if (terms) *terms = NULL;
  Tensor *simple = NULL;
  if (o->loss != LOSS_VLB) {
    Tensor *mean = m->cfg.learn_sigma ? ag_channel_slice(g, net, 0, x0->shape[1]) : net;
    simple = w->kind == WEIGHTING_NONE ? ag_mse(g, mean, target)
                                       : ag_weighted_mse(g, mean, target, graph_tensor_upload(g, 1, &B, weight));
  }
  if (o->loss == LOSS_SIMPLE) return simple;
  float *vcoef = arena_alloc(&g->arena, (size_t)B * VLB_COEFS * sizeof(float)); /* host */
  for (int b = 0; b < B; b++) vlb_coefficients(d, o, (int)tau[b], vcoef + (size_t)b * VLB_COEFS);
  const int vcoef_shape[2] = {B, VLB_COEFS};
  Tensor *bound = ag_vlb_loss(g, net, xt, x0, graph_tensor_upload(g, 2, vcoef_shape, vcoef), o->loss == LOSS_VLB, terms);
  return simple ? ag_add(g, simple, bound) : bound;
}

Tensor *diffusion_training_loss(const Diffusion *d, const Objective *o, UNet *m, Graph *g, Tensor *x0,
                                const int *labels, uint64_t seed, long step, int first_sample, double *tau_out,
                                Tensor **terms) {
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  double *tau = tau_out ? tau_out : arena_alloc(&g->arena, (size_t)B * sizeof(double));
  Tensor *noise = graph_tensor(g, x0->ndim, x0->shape);
  for (int b = 0; b < B; b++) {
    const int s = first_sample + b;
    tau[b] = objective_sample_tau(o, d, rng_uniform(seed, train_stream(step, s, STREAM_TAU), 0));
    g->backend->ops->fill_normal(g->backend, mem_floats_at(noise->data, (size_t)b * M), M, seed,
                                 train_stream(step, s, STREAM_NOISE), 0);
  }
  g->dropout_seed = seed ^ train_stream(step, 0, STREAM_DROPOUT);
  g->first_sample = (uint64_t)first_sample;
  return diffusion_loss_at(d, o, m, g, x0, tau, noise, labels, terms);
}

/* The classifier's input scale c_in and its time input at tau. */
static void classifier_inputs(const Diffusion *d, double tau, double *c_in, float *time_label) {
  double c_x, c_f;
  diffusion_network_io(d, tau, c_in, &c_x, &c_f);
  *time_label = (float)diffusion_label(d, tau);
}

Tensor *classifier_logits(const Diffusion *d, UNet *m, Graph *g, Tensor *x, double tau) {
  CHECK(m->cfg.classifier);
  const int B = x->shape[0];
  double c_in;
  float time_label;
  classifier_inputs(d, tau, &c_in, &time_label);
  float *label = arena_alloc(&g->arena, (size_t)B * sizeof(float)); /* host */
  for (int b = 0; b < B; b++) label[b] = time_label;
  Tensor *t = graph_tensor_upload(g, 1, &B, label);
  return unet_forward(m, g, c_in == 1.0 ? x : ag_scale(g, x, (float)c_in), t, NULL);
}

Tensor *classifier_training_loss(const Diffusion *d, const Objective *o, UNet *m, Graph *g, Tensor *x0,
                                 const int *labels, uint64_t seed, long step, int first_sample) {
  CHECK(m->cfg.classifier && labels);
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  Tensor *noise = graph_tensor(g, x0->ndim, x0->shape);
  float *coef = arena_alloc(&g->arena, (size_t)B * 4 * sizeof(float)); /* host */
  float *label = arena_alloc(&g->arena, (size_t)B * sizeof(float));
  for (int b = 0; b < B; b++) {
    const int s = first_sample + b;
    const double tau = objective_sample_tau(o, d, rng_uniform(seed, train_stream(step, s, STREAM_TAU), 0));
    g->backend->ops->fill_normal(g->backend, mem_floats_at(noise->data, (size_t)b * M), M, seed,
                                 train_stream(step, s, STREAM_NOISE), 0);
    double alpha, sigma, c_in;
    diffusion_marginal(d, tau, &alpha, &sigma);
    classifier_inputs(d, tau, &c_in, &label[b]);
    float *c = coef + 4 * b;
    c[0] = (float)(c_in * alpha), c[1] = (float)(c_in * sigma), c[2] = 0.0f, c[3] = 0.0f;
  }
  g->dropout_seed = seed ^ train_stream(step, 0, STREAM_DROPOUT);
  g->first_sample = (uint64_t)first_sample;
  const int coef_shape[2] = {B, 4};
  Tensor *c = graph_tensor_upload(g, 2, coef_shape, coef);
  Tensor *t = graph_tensor_upload(g, 1, &B, label);
  Tensor *xt = graph_tensor(g, x0->ndim, x0->shape), *unused = graph_tensor(g, x0->ndim, x0->shape);
  g->backend->ops->forward_mix(g->backend, xt->data, unused->data, x0->data, noise->data, c->data, B, M);
  return ag_cross_entropy(g, unet_forward(m, g, xt, t, NULL), labels);
}
