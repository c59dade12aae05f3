/* objective.c - build the diffusion training loss in an autograd graph; see objective.h. */
#include "diffusion/objective.h"

#include "autograd/functions.h"
#include "core/error.h"
#include "core/rng.h"

uint64_t train_stream(long step, int sample, TrainStreamPurpose purpose) {
  return ((uint64_t)step << 32) | ((uint64_t)sample << 3) | (uint64_t)purpose;
}

Tensor *diffusion_training_loss(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const int *labels, uint64_t seed,
                                long step, int first_sample) {
  const int B = x0->shape[0];
  const size_t M = x0->numel / (size_t)B;
  Tensor *xt = graph_tensor(g, x0->ndim, x0->shape);
  Tensor *target = graph_tensor(g, x0->ndim, x0->shape);
  Tensor *label = graph_tensor(g, 1, &B);
  float *noise = arena_floats(&g->arena, M);
  for (int b = 0; b < B; b++) {
    const int s = first_sample + b;
    const double tau = diffusion_sample_tau(d, rng_uniform(seed, train_stream(step, s, STREAM_TAU), 0));
    double alpha, sigma;
    diffusion_marginal(d, tau, &alpha, &sigma);
    label->data[b] = (float)diffusion_label(d, tau);
    rng_fill_normal(noise, M, seed, train_stream(step, s, STREAM_NOISE), 0);
    const float a = (float)alpha, sg = (float)sigma;
    const float *x = x0->data + (size_t)b * M;
    float *xb = xt->data + (size_t)b * M, *tb = target->data + (size_t)b * M;
    for (size_t i = 0; i < M; i++) {
      xb[i] = a * x[i] + sg * noise[i];
      switch (d->prediction) {
        case PRED_EPS: tb[i] = noise[i]; break;
        case PRED_X0: tb[i] = x[i]; break;
        case PRED_V: tb[i] = a * noise[i] - sg * x[i]; break;
      }
    }
  }
  g->dropout_seed = seed ^ train_stream(step, first_sample, STREAM_DROPOUT);
  Tensor *net = unet_forward(m, g, xt, label, labels);
  return ag_mse(g, net, target);
}
