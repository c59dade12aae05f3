/* unet_denoiser.c - U-Net denoiser: one grad-free forward per call on c_in x, output converted to
 * eps = c_x x + c_f F by diffusion_network_io (x0-prediction: eps = (x - alpha x0_hat) / sigma;
 * v-prediction: eps = sigma x + alpha v_hat; EDM's preconditioning; the flow velocity), and the
 * vector-Jacobian product by a backward pass to the input (parameters are marked as not needing
 * gradients for it, so no weight gradient is computed). A model with a learned variance outputs
 * F in its first C channels and the variance output v in the last C (predict_eps_var). */
#include "diffusion/unet_denoiser.h"

#include "autograd/functions.h"
#include "core/error.h"

static bool guided(const UNetDenoiser *u) { return u->guidance != 0.0; }

/* One network forward at (x, tau) with grad mode `grad` (x then requires grad): x (host) is uploaded,
 * twice with guidance (the conditional half, then the null-class half: 2B rows). Returns the mean
 * output F and the coefficients with eps = cx x + cn F, and *var_out (may be NULL) the variance output
 * (NULL for a model without one). Leaves grad mode on, training off; the caller restores. */
static Tensor *forward(UNetDenoiser *u, const float *x, int B, double tau, bool grad, Tensor **x_out, float *cx,
                       float *cn, Tensor **var_out) {
  const UNetConfig *c = &u->model->cfg;
  Graph *g = u->graph;
  graph_reset(g);
  g->grad_enabled = grad;
  g->training = false;
  const int rows = guided(u) ? 2 * B : B;
  const int shape[4] = {rows, c->in_channels, c->resolution, c->resolution};
  const size_t per = (size_t)c->in_channels * c->resolution * c->resolution;
  Tensor *xt = graph_tensor(g, 4, shape);
  for (int half = 0; half < rows / B; half++)
    backend_upload(g->backend, mem_floats_at(xt->data, (size_t)half * B * per), x, (size_t)B * per * sizeof(float));
  xt->requires_grad = grad;
  float *label = arena_alloc(&g->arena, (size_t)rows * sizeof(float)); /* host */
  for (int b = 0; b < rows; b++) label[b] = (float)diffusion_label(u->diffusion, tau);
  Tensor *t = graph_tensor_upload(g, 1, &rows, label);
  const int *labels = u->labels;
  if (guided(u)) {
    CHECK(u->labels && c->null_class && u->guided_labels);
    for (int b = 0; b < B; b++) u->guided_labels[b] = u->labels[b], u->guided_labels[B + b] = c->num_classes;
    labels = u->guided_labels;
  }
  double c_in, c_x, c_f;
  diffusion_network_io(u->diffusion, tau, &c_in, &c_x, &c_f);
  Tensor *net = unet_forward(u->model, g, c_in == 1.0 ? xt : ag_scale(g, xt, (float)c_in), t, labels);
  *cx = (float)c_x, *cn = (float)c_f;
  *x_out = xt;
  if (var_out) *var_out = c->learn_sigma ? ag_channel_slice(g, net, c->in_channels, c->in_channels) : NULL;
  return c->learn_sigma ? ag_channel_slice(g, net, 0, c->in_channels) : net;
}

/* eps = cx x + cn F into eps_out (host, B images), F overwritten; with guidance the rows of the
 * conditional half become (1 + w) eps_cond - w eps_null. */
static void download_eps(const UNetDenoiser *u, Tensor *mean, Tensor *xt, float cx, float cn, int B, float *eps_out) {
  const Backend *be = u->graph->backend;
  be->ops->axpby(be, mean->data, cx, xt->data, cn, mean->data, mean->numel);
  const size_t n = mean->numel / (size_t)mean->shape[0] * (size_t)B;
  if (guided(u))
    be->ops->axpby(be, mean->data, (float)(1.0 + u->guidance), mean->data, (float)-u->guidance,
                   mem_floats_at(mean->data, n), n);
  backend_download(be, eps_out, mean->data, n * sizeof(float));
}

static void unet_predict_eps(Denoiser *self, float *eps_out, const float *x, int B, double tau) {
  UNetDenoiser *u = self->ctx;
  Graph *g = u->graph;
  const bool was = g->grad_enabled, was_training = g->training;
  float cx, cn;
  Tensor *xt, *mean = forward(u, x, B, tau, false, &xt, &cx, &cn, NULL);
  download_eps(u, mean, xt, cx, cn, B, eps_out);
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
  download_eps(u, mean, xt, cx, cn, B, eps_out);
  backend_download(g->backend, var_out, var->data, var->numel / (size_t)var->shape[0] * (size_t)B * sizeof(float));
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
  const size_t n = net->numel / (size_t)net->shape[0] * (size_t)B; /* one half */
  Tensor *eps = graph_tensor(g, net->ndim, net->shape);
  be->ops->axpby(be, eps->data, cx, xt->data, cn, net->data, net->numel);
  if (guided(u))
    be->ops->axpby(be, eps->data, (float)(1.0 + u->guidance), eps->data, (float)-u->guidance,
                   mem_floats_at(eps->data, n), n);
  backend_download(be, eps_out, eps->data, n * sizeof(float));
  /* upstream of F: cn v, with guidance (1 + w) cn v on the conditional rows and -w cn v on the null rows */
  Tensor *upstream = graph_tensor(g, net->ndim, net->shape);
  Tensor *vt = graph_tensor(g, net->ndim, net->shape);
  backend_upload(be, vt->data, v, n * sizeof(float));
  const float w = (float)u->guidance;
  be->ops->scale_forward(be, upstream->data, vt->data, guided(u) ? (1.0f + w) * cn : cn, n);
  if (guided(u)) be->ops->scale_forward(be, mem_floats_at(upstream->data, n), vt->data, -w * cn, n);
  graph_backward_from(g, net, upstream->data);
  params_set_requires_grad(&u->model->params, true);
  /* d eps / dx^T v = cx v + J^T (upstream), the two halves' input gradients summed */
  be->ops->axpby(be, vt->data, cx, vt->data, 1.0f, xt->grad, n);
  if (guided(u)) be->ops->axpby(be, vt->data, 1.0f, vt->data, 1.0f, mem_floats_at(xt->grad, n), n);
  backend_download(be, vjp_out, vt->data, n * sizeof(float));
  g->grad_enabled = was;
  g->training = was_training;
  self->nfe++;
}

Denoiser unet_denoiser(UNetDenoiser *ctx) {
  Denoiser d = {unet_predict_eps, 0, ctx, unet_predict_eps_vjp,
                ctx->model->cfg.learn_sigma ? unet_predict_eps_var : NULL};
  return d;
}
