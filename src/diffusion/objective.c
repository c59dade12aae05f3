/* objective.c - build the diffusion training loss in an autograd graph; see objective.h. */
#include "diffusion/objective.h"

#include "autograd/functions.h"
#include "core/error.h"
#include "core/rng.h"

uint64_t train_stream(long step, int sample, TrainStreamPurpose purpose) {
  return ((uint64_t)step << 32) | ((uint64_t)sample << 3) | (uint64_t)purpose;
}

Tensor *diffusion_loss_at(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const double *tau, const float *noise,
                          const int *labels) {
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  Tensor *xt = graph_tensor(g, x0->ndim, x0->shape);
  Tensor *target = graph_tensor(g, x0->ndim, x0->shape);
  Tensor *label = graph_tensor(g, 1, &B);
  for (int b = 0; b < B; b++) {
    double alpha, sigma;
    diffusion_marginal(d, tau[b], &alpha, &sigma);
    label->data[b] = (float)diffusion_label(d, tau[b]);
    const float a = (float)alpha, sg = (float)sigma;
    const float *x = x0->data + (size_t)b * M, *nz = noise + (size_t)b * M;
    float *xb = xt->data + (size_t)b * M, *tb = target->data + (size_t)b * M;
    for (size_t i = 0; i < M; i++) {
      xb[i] = a * x[i] + sg * nz[i];
      switch (d->prediction) {
        case PRED_EPS: tb[i] = nz[i]; break;
        case PRED_X0: tb[i] = x[i]; break;
        case PRED_V: tb[i] = a * nz[i] - sg * x[i]; break;
      }
    }
  }
  Tensor *net = unet_forward(m, g, xt, label, labels);
  return ag_mse(g, net, target);
}

Tensor *diffusion_training_loss(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const int *labels, uint64_t seed,
                                long step, int first_sample) {
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  double *tau = arena_alloc(&g->arena, (size_t)B * sizeof(double));
  float *noise = arena_floats(&g->arena, x0->numel);
  for (int b = 0; b < B; b++) {
    const int s = first_sample + b;
    tau[b] = diffusion_sample_tau(d, rng_uniform(seed, train_stream(step, s, STREAM_TAU), 0));
    rng_fill_normal(noise + (size_t)b * M, M, seed, train_stream(step, s, STREAM_NOISE), 0);
  }
  g->dropout_seed = seed ^ train_stream(step, 0, STREAM_DROPOUT);
  g->first_sample = (uint64_t)first_sample;
  return diffusion_loss_at(d, m, g, x0, tau, noise, labels);
}
