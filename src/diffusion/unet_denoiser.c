/* unet_denoiser.c - U-Net denoiser: one grad-free forward per call on c_in x, output converted to
 * eps = c_x x + c_f F by diffusion_network_io (x0-prediction: eps = (x - alpha x0_hat) / sigma;
 * v-prediction: eps = sigma x + alpha v_hat; EDM's preconditioning; the flow velocity), and the
 * vector-Jacobian product by a backward pass to the input (parameters are marked as not needing
 * gradients for it, so no weight gradient is computed). A model with a learned variance outputs
 * F in its first C channels and the variance output v in the last C (predict_eps_var). */
#include "diffusion/unet_denoiser.h"

#include "autograd/functions.h"
#include "core/error.h"

/* One network forward at (x, tau) with grad mode `grad` (x then requires grad): x (host) is uploaded;
 * returns the mean output F and the coefficients with eps = cx x + cn F, and *var_out (may be NULL)
 * the variance output (NULL for a model without one). Leaves grad mode on, training off; the caller
 * restores. */
static Tensor *forward(UNetDenoiser *u, const float *x, int B, double tau, bool grad, Tensor **x_out, float *cx,
                       float *cn, Tensor **var_out) {
  const UNetConfig *c = &u->model->cfg;
  Graph *g = u->graph;
  graph_reset(g);
  g->grad_enabled = grad;
  g->training = false;
  const int shape[4] = {B, c->in_channels, c->resolution, c->resolution};
  Tensor *xt = graph_tensor_upload(g, 4, shape, x);
  xt->requires_grad = grad;
  float *label = arena_alloc(&g->arena, (size_t)B * sizeof(float)); /* host */
  for (int b = 0; b < B; b++) label[b] = (float)diffusion_label(u->diffusion, tau);
  Tensor *t = graph_tensor_upload(g, 1, &B, label);
  double c_in, c_x, c_f;
  diffusion_network_io(u->diffusion, tau, &c_in, &c_x, &c_f);
  Tensor *net = unet_forward(u->model, g, c_in == 1.0 ? xt : ag_scale(g, xt, (float)c_in), t, u->labels);
  *cx = (float)c_x, *cn = (float)c_f;
  *x_out = xt;
  if (var_out) *var_out = c->learn_sigma ? ag_channel_slice(g, net, c->in_channels, c->in_channels) : NULL;
  return c->learn_sigma ? ag_channel_slice(g, net, 0, c->in_channels) : net;
}

/* eps = cx x + cn F into eps_out (host), F overwritten. */
static void download_eps(Graph *g, Tensor *mean, Tensor *xt, float cx, float cn, float *eps_out) {
  g->backend->ops->axpby(g->backend, mean->data, cx, xt->data, cn, mean->data, mean->numel);
  tensor_download(mean, eps_out);
}

static void unet_predict_eps(Denoiser *self, float *eps_out, const float *x, int B, double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  Tensor *xt, *mean = forward(u, x, B, tau, false, &xt, &cx, &cn, NULL);
  download_eps(g, mean, xt, cx, cn, eps_out);
  g->grad_enabled = was;
  g->training = was_training;
  self->nfe++;
}

static void unet_predict_eps_var(Denoiser *self, float *eps_out, float *var_out, const float *x, int B, double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  Tensor *xt, *var, *mean = forward(u, x, B, tau, false, &xt, &cx, &cn, &var);
  CHECK(var != NULL);
  download_eps(g, mean, xt, cx, cn, eps_out);
  tensor_download(var, var_out);
  g->grad_enabled = was;
  g->training = was_training;
  self->nfe++;
}

static void unet_predict_eps_vjp(Denoiser *self, float *eps_out, float *vjp_out, const float *x, const float *v, int B,
                                 double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const Backend *be = g->backend;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  params_set_requires_grad(&u->model->params, false); /* only the input gradient: no weight GEMMs */
  Tensor *xt, *net = forward(u, x, B, tau, true, &xt, &cx, &cn, NULL);
  Tensor *eps = graph_tensor(g, net->ndim, net->shape);
  be->ops->axpby(be, eps->data, cx, xt->data, cn, net->data, net->numel);
  tensor_download(eps, eps_out);
  Tensor *vt = graph_tensor_upload(g, net->ndim, net->shape, v);
  Tensor *upstream = graph_tensor(g, net->ndim, net->shape);
  be->ops->scale_forward(be, upstream->data, vt->data, cn, net->numel);
  graph_backward_from(g, net, upstream->data);
  params_set_requires_grad(&u->model->params, true);
  be->ops->axpby(be, vt->data, cx, vt->data, 1.0f, xt->grad, net->numel); /* d eps / dx^T v = cx v + J^T (cn v) */
  tensor_download(vt, vjp_out);
  g->grad_enabled = was;
  g->training = was_training;
  self->nfe++;
}

Denoiser unet_denoiser(UNetDenoiser *ctx) {
  Denoiser d = {unet_predict_eps, 0, ctx, unet_predict_eps_vjp,
                ctx->model->cfg.learn_sigma ? unet_predict_eps_var : NULL};
  return d;
}
