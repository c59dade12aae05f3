/* objective.c - build the diffusion training loss in an autograd graph; see objective.h. */
#include "diffusion/objective.h"

#include "autograd/functions.h"
#include "core/error.h"
#include "core/rng.h"

uint64_t train_stream(long step, int sample, TrainStreamPurpose purpose) {
  return ((uint64_t)step << 32) | ((uint64_t)sample << 3) | (uint64_t)purpose;
}

Tensor *diffusion_loss_at(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const double *tau, Tensor *noise,
                          const int *labels) {
  CHECK(tensor_same_shape(x0, noise));
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  float *coef = arena_alloc(&g->arena, (size_t)B * 4 * sizeof(float)); /* host: per-sample scalars */
  float *label = arena_alloc(&g->arena, (size_t)B * sizeof(float));
  for (int b = 0; b < B; b++) {
    double alpha, sigma;
    diffusion_marginal(d, tau[b], &alpha, &sigma);
    label[b] = (float)diffusion_label(d, tau[b]);
    const float a = (float)alpha, sg = (float)sigma;
    float *c = coef + 4 * b;
    c[0] = a, c[1] = sg; /* x_t = alpha x0 + sigma noise */
    switch (d->prediction) { /* target = c[2] x0 + c[3] noise */
      case PRED_EPS: c[2] = 0.0f, c[3] = 1.0f; break;
      case PRED_X0: c[2] = 1.0f, c[3] = 0.0f; break;
      case PRED_V: c[2] = -sg, c[3] = a; break; /* v = alpha eps - sigma x0 */
    }
  }
  const int coef_shape[2] = {B, 4};
  Tensor *c = graph_tensor_upload(g, 2, coef_shape, coef);
  Tensor *t = graph_tensor_upload(g, 1, &B, label);
  Tensor *xt = graph_tensor(g, x0->ndim, x0->shape);
  Tensor *target = graph_tensor(g, x0->ndim, x0->shape);
  g->backend->ops->forward_mix(g->backend, xt->data, target->data, x0->data, noise->data, c->data, B, M);
  Tensor *net = unet_forward(m, g, xt, t, labels);
  return ag_mse(g, net, target);
}

Tensor *diffusion_training_loss(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const int *labels, uint64_t seed,
                                long step, int first_sample) {
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  double *tau = arena_alloc(&g->arena, (size_t)B * sizeof(double));
  Tensor *noise = graph_tensor(g, x0->ndim, x0->shape);
  for (int b = 0; b < B; b++) {
    const int s = first_sample + b;
    tau[b] = diffusion_sample_tau(d, rng_uniform(seed, train_stream(step, s, STREAM_TAU), 0));
    g->backend->ops->fill_normal(g->backend, mem_floats_at(noise->data, (size_t)b * M), M, seed,
                                 train_stream(step, s, STREAM_NOISE), 0);
  }
  g->dropout_seed = seed ^ train_stream(step, 0, STREAM_DROPOUT);
  g->first_sample = (uint64_t)first_sample;
  return diffusion_loss_at(d, m, g, x0, tau, noise, labels);
}
