/* classifier_guidance.c - classifier guidance; see classifier_guidance.h. */
#include "diffusion/classifier_guidance.h"

#include <math.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "diffusion/objective.h"

static void guide(ClassifierGuided *c, float *eps, const float *x, int B, double tau) {
  const size_t n = (size_t)B * c->per_sample;
  double alpha, sigma;
  diffusion_marginal(c->diffusion, tau, &alpha, &sigma);
  c->classifier->grad_log_prob(c->classifier, c->grad, x, c->labels, B, tau);
  const float k = (float)(c->scale * sigma);
  for (size_t j = 0; j < n; j++) eps[j] -= k * c->grad[j];
}

static void guided_predict(Denoiser *self, float *eps, const float *x, int B, double tau) {
  ClassifierGuided *c = self->ctx;
  c->inner->predict_eps(c->inner, eps, x, B, tau);
  if (c->scale != 0.0) guide(c, eps, x, B, tau);
  self->nfe++;
}

static void guided_predict_var(Denoiser *self, float *eps, float *var, const float *x, int B, double tau) {
  ClassifierGuided *c = self->ctx;
  c->inner->predict_eps_var(c->inner, eps, var, x, B, tau);
  if (c->scale != 0.0) guide(c, eps, x, B, tau);
  self->nfe++;
}

Denoiser classifier_guided_denoiser(ClassifierGuided *ctx) {
  Denoiser d = {guided_predict, 0, ctx, NULL, ctx->inner->predict_eps_var ? guided_predict_var : NULL};
  return d;
}

static void unet_grad_log_prob(ClassifierGrad *self, float *grad_out, const float *x, const int *labels, int B,
                               double tau) {
  UNetClassifier *u = self->ctx;
  const UNetConfig *c = &u->model->cfg;
  Graph *g = u->graph;
  graph_reset(g);
  g->grad_enabled = true;
  g->training = false;
  const int shape[4] = {B, c->in_channels, c->resolution, c->resolution};
  const size_t n = (size_t)B * c->in_channels * c->resolution * c->resolution;
  Tensor *xt = graph_tensor(g, 4, shape);
  backend_upload(g->backend, xt->data, x, n * sizeof(float));
  xt->requires_grad = true;
  params_set_requires_grad(&u->model->params, false); /* only the input gradient */
  Tensor *logits = classifier_logits(u->diffusion, u->model, g, xt, tau);
  graph_backward(g, ag_cross_entropy(g, logits, labels));
  params_set_requires_grad(&u->model->params, true);
  /* the mean cross-entropy's gradient is -(1/B) grad log p(y_b | x_b) in row b */
  const Backend *be = g->backend;
  be->ops->scale_forward(be, xt->grad, xt->grad, (float)-B, n);
  backend_download(be, grad_out, xt->grad, n * sizeof(float));
  g->grad_enabled = false;
  self->nfe++;
}

ClassifierGrad unet_classifier_grad(UNetClassifier *ctx) {
  CHECK(ctx->model->cfg.classifier);
  ClassifierGrad c = {unet_grad_log_prob, 0, ctx};
  return c;
}

int classifier_process_matches(const Diffusion *model, const Diffusion *classifier, char *err, size_t errlen) {
  const double lo = diffusion_tau_min(model), hi = diffusion_tau_max(model);
  if (fabs(lo - diffusion_tau_min(classifier)) > 1e-9 * fmax(1.0, hi) ||
      fabs(hi - diffusion_tau_max(classifier)) > 1e-9 * fmax(1.0, hi))
    return errorf(err, errlen, "the classifier was trained on times %g..%g, the model on %g..%g: train the classifier "
                  "with the model's diffusion section", diffusion_tau_min(classifier), diffusion_tau_max(classifier), lo, hi);
  for (int i = 0; i <= 64; i++) {
    const double tau = lo + (hi - lo) * i / 64.0;
    double am, sm, ac, sc;
    diffusion_marginal(model, tau, &am, &sm);
    diffusion_marginal(classifier, tau, &ac, &sc);
    if (fabs(am - ac) > 1e-6 * fabs(am) + 1e-9 || fabs(sm - sc) > 1e-6 * fabs(sm) + 1e-9)
      return errorf(err, errlen, "the classifier was trained on another noise process (at tau %g: alpha %g sigma %g, the "
                    "model's %g %g): train it with the model's diffusion section", tau, ac, sc, am, sm);
  }
  return 0;
}
