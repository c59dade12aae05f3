/* classifier_free_guidance.c - classifier-free guidance; see classifier_free_guidance.h. */
#include "diffusion/classifier_free_guidance.h"

#include "core/error.h"

/* The scratch: the two passes' eps (2 B rows), their upstream vectors (2 B rows), the 2 B labels. */
size_t classifier_free_scratch_bytes(int B, size_t per_sample) {
  return 4 * (size_t)B * per_sample * sizeof(float) + 2 * (size_t)B * sizeof(int);
}

static bool guided(const ClassifierFree *c) { return c->guidance != 0.0; }

static float *pair_eps(const ClassifierFree *c) { return c->scratch; }
static float *pair_v(const ClassifierFree *c, int B) { return pair_eps(c) + 2 * (size_t)B * c->per_sample; }
static int *pair_labels(const ClassifierFree *c, int B) {
  return (int *)(pair_v(c, B) + 2 * (size_t)B * c->per_sample);
}

/* The labels of the two passes: the requested classes, then the null class. */
static const int *labels_for(const ClassifierFree *c, int B) {
  if (!guided(c)) return c->labels;
  CHECK(c->labels && c->scratch);
  int *l = pair_labels(c, B);
  for (int b = 0; b < B; b++) l[b] = c->labels[b], l[B + b] = c->model->null_label;
  return l;
}

/* eps_out = (1 + w) eps_cond - w eps_null from the two passes. */
static void combine(const ClassifierFree *c, float *eps_out, int B) {
  const size_t n = (size_t)B * c->per_sample;
  const float *cond = pair_eps(c), *null = cond + n;
  const float wc = (float)(1.0 + c->guidance), wn = (float)-c->guidance;
  for (size_t i = 0; i < n; i++) eps_out[i] = wc * cond[i] + wn * null[i];
}

static void predict(ClassifierFree *c, float *eps_out, float *var_out, const float *x, int B, double tau) {
  const int *labels = labels_for(c, B);
  if (!guided(c)) {
    c->model->predict(c->model, eps_out, var_out, x, labels, B, 1, tau);
    return;
  }
  c->model->predict(c->model, pair_eps(c), var_out, x, labels, B, 2, tau);
  combine(c, eps_out, B);
}

static void cfg_predict_eps(Denoiser *self, float *eps_out, const float *x, int B, double tau) {
  predict(self->ctx, eps_out, NULL, x, B, tau);
  self->nfe++;
}

static void cfg_predict_eps_var(Denoiser *self, float *eps_out, float *var_out, const float *x, int B, double tau) {
  predict(self->ctx, eps_out, var_out, x, B, tau);
  self->nfe++;
}

static void cfg_predict_eps_vjp(Denoiser *self, float *eps_out, float *vjp_out, const float *x, const float *v, int B,
                                double tau) {
  ClassifierFree *c = self->ctx;
  const int *labels = labels_for(c, B);
  self->nfe++;
  if (!guided(c)) {
    c->model->predict_vjp(c->model, eps_out, vjp_out, x, v, labels, B, 1, tau);
    return;
  }
  const size_t n = (size_t)B * c->per_sample;
  float *up = pair_v(c, B);
  const float wc = (float)(1.0 + c->guidance), wn = (float)-c->guidance;
  for (size_t i = 0; i < n; i++) up[i] = wc * v[i], up[n + i] = wn * v[i];
  c->model->predict_vjp(c->model, pair_eps(c), vjp_out, x, up, labels, B, 2, tau);
  combine(c, eps_out, B);
}

Denoiser classifier_free_denoiser(ClassifierFree *ctx) {
  Denoiser d = {.predict_eps = cfg_predict_eps,
                .ctx = ctx,
                .predict_eps_vjp = ctx->model->predict_vjp ? cfg_predict_eps_vjp : NULL,
                .predict_eps_var = ctx->model->has_var ? cfg_predict_eps_var : NULL};
  return d;
}
