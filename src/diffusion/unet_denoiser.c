/* unet_denoiser.c - U-Net denoiser: one grad-free forward per call on c_in x, output converted to
 * eps = c_x x + c_f F by diffusion_network_io (x0-prediction: eps = (x - alpha x0_hat) / sigma;
 * v-prediction: eps = sigma x + alpha v_hat; EDM's preconditioning; the flow velocity), and the
 * vector-Jacobian product by a backward pass to the input (parameters are marked as not needing
 * gradients for it, so no weight gradient is computed). A model with a learned variance outputs
 * F in its first C channels and the variance output v in the last C. The passes of a LabelledEps call
 * (classifier-free guidance) are rows of one batch. */
#include "diffusion/unet_denoiser.h"

#include "autograd/functions.h"
#include "core/error.h"

/* One network forward at (x, tau) with grad mode `grad` (x then requires grad): x (host, B images) is
 * uploaded once per pass, rows = passes * B. Returns the mean output F and the coefficients with
 * eps = cx x + cn F, and *var_out (may be NULL) the variance output (NULL for a model without one).
 * Leaves grad mode on, training off; the caller restores. */
static Tensor *forward(UNetDenoiser *u, const float *x, const int *labels, int B, int passes, double tau, bool grad,
                       Tensor **x_out, float *cx, float *cn, Tensor **var_out) {
  const UNetConfig *c = &u->model->cfg;
  Graph *g = u->graph;
  graph_reset(g);
  g->grad_enabled = grad;
  g->training = false;
  const int rows = passes * B;
  const int shape[4] = {rows, c->in_channels, c->resolution, c->resolution};
  const size_t per = (size_t)c->in_channels * c->resolution * c->resolution;
  Tensor *xt = graph_tensor(g, 4, shape);
  for (int p = 0; p < passes; p++)
    backend_upload(g->backend, mem_floats_at(xt->data, (size_t)p * B * per), x, (size_t)B * per * sizeof(float));
  xt->requires_grad = grad;
  float *label = arena_alloc(&g->arena, (size_t)rows * sizeof(float)); /* host */
  for (int b = 0; b < rows; b++) label[b] = (float)diffusion_label(u->diffusion, tau);
  Tensor *t = graph_tensor_upload(g, 1, &rows, label);
  double c_in, c_x, c_f;
  diffusion_network_io(u->diffusion, tau, &c_in, &c_x, &c_f);
  Tensor *net = unet_forward(u->model, g, c_in == 1.0 ? xt : ag_scale(g, xt, (float)c_in), t, labels);
  *cx = (float)c_x, *cn = (float)c_f;
  *x_out = xt;
  if (var_out) *var_out = c->learn_sigma ? ag_channel_slice(g, net, c->in_channels, c->in_channels) : NULL;
  return c->learn_sigma ? ag_channel_slice(g, net, 0, c->in_channels) : net;
}

static void unet_predict(LabelledEps *self, float *eps_out, float *var_out, const float *x, const int *labels, int B,
                         int passes, double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const Backend *be = g->backend;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  Tensor *xt, *var, *mean = forward(u, x, labels, B, passes, tau, false, &xt, &cx, &cn, var_out ? &var : NULL);
  be->ops->axpby(be, mean->data, cx, xt->data, cn, mean->data, mean->numel);
  backend_download(be, eps_out, mean->data, mean->numel * sizeof(float));
  if (var_out) {
    CHECK(var != NULL);
    backend_download(be, var_out, var->data, var->numel / (size_t)passes * sizeof(float));
  }
  g->grad_enabled = was;
  g->training = was_training;
}

static void unet_predict_vjp(LabelledEps *self, float *eps_out, float *vjp_out, const float *x, const float *v,
                             const int *labels, int B, int passes, double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const Backend *be = g->backend;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  params_set_requires_grad(&u->model->params, false); /* only the input gradient: no weight GEMMs */
  Tensor *xt, *net = forward(u, x, labels, B, passes, tau, true, &xt, &cx, &cn, NULL);
  const size_t n = net->numel / (size_t)passes; /* one pass */
  Tensor *eps = graph_tensor(g, net->ndim, net->shape);
  be->ops->axpby(be, eps->data, cx, xt->data, cn, net->data, net->numel);
  backend_download(be, eps_out, eps->data, net->numel * sizeof(float));
  /* upstream of F: cn v_p on each pass's rows */
  Tensor *vt = graph_tensor(g, net->ndim, net->shape);
  backend_upload(be, vt->data, v, net->numel * sizeof(float));
  Tensor *upstream = graph_tensor(g, net->ndim, net->shape);
  be->ops->scale_forward(be, upstream->data, vt->data, cn, net->numel);
  graph_backward_from(g, net, upstream->data);
  params_set_requires_grad(&u->model->params, true);
  /* sum_p (d eps_p / dx)^T v_p = sum_p (cx v_p + J_p^T cn v_p), into the first pass's rows */
  be->ops->axpby(be, vt->data, cx, vt->data, 1.0f, xt->grad, n);
  for (int p = 1; p < passes; p++) {
    be->ops->axpby(be, vt->data, 1.0f, vt->data, cx, mem_floats_at(vt->data, (size_t)p * n), n);
    be->ops->axpby(be, vt->data, 1.0f, vt->data, 1.0f, mem_floats_at(xt->grad, (size_t)p * n), n);
  }
  backend_download(be, vjp_out, vt->data, n * sizeof(float));
  g->grad_enabled = was;
  g->training = was_training;
}

Denoiser unet_denoiser(UNetDenoiser *ctx) {
  const UNetConfig *c = &ctx->model->cfg;
  CHECK(ctx->guidance == 0.0 || (c->null_class && ctx->labels && ctx->guided_scratch));
  ctx->net = (LabelledEps){.predict = unet_predict,
                           .predict_vjp = unet_predict_vjp,
                           .has_var = c->learn_sigma,
                           .null_label = c->num_classes,
                           .ctx = ctx};
  ctx->cfg = (ClassifierFree){.model = &ctx->net,
                              .labels = ctx->labels,
                              .guidance = ctx->guidance,
                              .per_sample = (size_t)c->in_channels * c->resolution * c->resolution,
                              .scratch = ctx->guided_scratch};
  return classifier_free_denoiser(&ctx->cfg);
}
