/* denoiser.c - U-Net denoiser: one grad-free forward per call, output converted to eps.
 * x0-prediction: eps = (x - alpha x0_hat) / sigma; v-prediction (alpha^2 + sigma^2 = 1):
 * eps = sigma x + alpha v_hat. */
#include "diffusion/denoiser.h"

#include <string.h>

#include "core/error.h"

static void unet_predict_eps(Denoiser *self, float *eps_out, const float *x, int B, double tau) {
  UNetDenoiser *u = self->ctx;
  const UNetConfig *c = &u->model->cfg;
  Graph *g = u->graph;
  graph_reset(g);
  const bool was = g->grad_enabled, was_training = g->training;
  g->grad_enabled = false;
  g->training = false;
  const int shape[4] = {B, c->in_channels, c->resolution, c->resolution};
  Tensor *xt = graph_wrap(g, (float *)x, 4, shape, false);
  Tensor *t = graph_tensor(g, 1, &B);
  for (int b = 0; b < B; b++) t->data[b] = (float)diffusion_label(u->diffusion, tau);
  Tensor *net = unet_forward(u->model, g, xt, t, u->labels);
  double alpha, sigma;
  diffusion_marginal(u->diffusion, tau, &alpha, &sigma);
  const float a = (float)alpha, s = (float)sigma;
  switch (u->diffusion->prediction) {
    case PRED_EPS: memcpy(eps_out, net->data, net->numel * sizeof(float)); break;
    case PRED_X0:
      for (size_t i = 0; i < net->numel; i++) eps_out[i] = (x[i] - a * net->data[i]) / s;
      break;
    case PRED_V:
      for (size_t i = 0; i < net->numel; i++) eps_out[i] = s * x[i] + a * net->data[i];
      break;
  }
  g->grad_enabled = was;
  g->training = was_training;
  self->nfe++;
}

Denoiser unet_denoiser(UNetDenoiser *ctx) {
  Denoiser d = {unet_predict_eps, 0, ctx};
  return d;
}
