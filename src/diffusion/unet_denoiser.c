/* unet_denoiser.c - U-Net denoiser: one grad-free forward per call, output converted to eps
 * (x0-prediction: eps = (x - alpha x0_hat) / sigma; v-prediction, alpha^2 + sigma^2 = 1:
 * eps = sigma x + alpha v_hat), and the vector-Jacobian product by a backward pass to the input
 * (parameters are marked as not needing gradients for it, so no weight gradient is computed). */
#include "diffusion/unet_denoiser.h"

#include <string.h>

#include "core/error.h"

/* eps = cx x + cn net with (cx, cn) per prediction type: eps (0, 1), x0 (1/s, -a/s), v (s, a). */
static void eps_coefficients(Prediction p, float a, float s, float *cx, float *cn) {
  *cx = 0.0f, *cn = 1.0f;
  switch (p) {
    case PRED_EPS: *cx = 0.0f, *cn = 1.0f; return;
    case PRED_X0: *cx = 1.0f / s, *cn = -a / s; return;
    case PRED_V: *cx = s, *cn = a; return;
  }
}

/* One network forward at (x, tau) with grad mode `grad` (x then requires grad): the output net and
 * the coefficients with eps = cx x + cn net. Leaves grad mode on, training off; the caller restores. */
static Tensor *forward(UNetDenoiser *u, const float *x, int B, double tau, bool grad, Tensor **x_out, float *cx,
                       float *cn) {
  const UNetConfig *c = &u->model->cfg;
  Graph *g = u->graph;
  graph_reset(g);
  g->grad_enabled = grad;
  g->training = false;
  const int shape[4] = {B, c->in_channels, c->resolution, c->resolution};
  Tensor *xt;
  if (grad) {
    xt = graph_tensor(g, 4, shape);
    memcpy(xt->data, x, xt->numel * sizeof(float));
    xt->requires_grad = true;
  } else {
    xt = graph_wrap(g, (float *)x, 4, shape, false);
  }
  Tensor *t = graph_tensor(g, 1, &B);
  for (int b = 0; b < B; b++) t->data[b] = (float)diffusion_label(u->diffusion, tau);
  Tensor *net = unet_forward(u->model, g, xt, t, u->labels);
  double alpha, sigma;
  diffusion_marginal(u->diffusion, tau, &alpha, &sigma);
  eps_coefficients(u->diffusion->prediction, (float)alpha, (float)sigma, cx, cn);
  *x_out = xt;
  return net;
}

static void unet_predict_eps(Denoiser *self, float *eps_out, const float *x, int B, double tau) {
  UNetDenoiser *u = self->ctx;
  const bool was = u->graph->grad_enabled, was_training = u->graph->training;
  float cx, cn;
  Tensor *xt, *net = forward(u, x, B, tau, false, &xt, &cx, &cn);
  for (size_t i = 0; i < net->numel; i++) eps_out[i] = cx * x[i] + cn * net->data[i];
  u->graph->grad_enabled = was;
  u->graph->training = was_training;
  self->nfe++;
}

static void unet_predict_eps_vjp(Denoiser *self, float *eps_out, float *vjp_out, const float *x, const float *v, int B,
                                 double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  params_set_requires_grad(&u->model->params, false); /* only the input gradient: no weight GEMMs */
  Tensor *xt, *net = forward(u, x, B, tau, true, &xt, &cx, &cn);
  float *upstream = arena_floats(&g->arena, net->numel);
  for (size_t i = 0; i < net->numel; i++) {
    eps_out[i] = cx * x[i] + cn * net->data[i];
    upstream[i] = cn * v[i];
  }
  graph_backward_from(g, net, upstream);
  params_set_requires_grad(&u->model->params, true);
  for (size_t i = 0; i < net->numel; i++) vjp_out[i] = cx * v[i] + xt->grad[i];
  g->grad_enabled = was;
  g->training = was_training;
  self->nfe++;
}

Denoiser unet_denoiser(UNetDenoiser *ctx) {
  Denoiser d = {unet_predict_eps, 0, ctx, unet_predict_eps_vjp};
  return d;
}
