/* objective.h - the training loss of a diffusion model on a batch.
 *
 * For each sample b of the (full, pre-accumulation) batch, tau_b and the noise eps_b are drawn from
 * the counter-based RNG at (seed, train_stream(step, b, purpose)), so a run is reproducible and a
 * resumed run continues bit-identically; gradient accumulation draws exactly what one large batch
 * would. Loss = mean ||net(x_tau, label(tau)) - target||^2 with target eps, x0 or
 * v = alpha eps - sigma x0 (see diffusion.h for why the DSM weighting reduces to this).
 */
#ifndef DIFFUSION_OBJECTIVE_H
#define DIFFUSION_OBJECTIVE_H

#include "autograd/graph.h"
#include "diffusion/diffusion.h"
#include "nn/unet.h"

typedef enum { STREAM_TAU = 0, STREAM_NOISE = 1, STREAM_INDEX = 2, STREAM_FLIP = 3, STREAM_DROPOUT = 4 } TrainStreamPurpose;

/* Stream id for sample `sample` (index within the full batch) of step `step`. */
uint64_t train_stream(long step, int sample, TrainStreamPurpose purpose);

/* The loss for given noise levels tau (B, host) and noise (B, C, H, W, a tensor of the graph):
 * x_tau = alpha x0 + sigma noise. The forward process and the target run on the graph's backend
 * (its forward_mix op). */
Tensor *diffusion_loss_at(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const double *tau, Tensor *noise,
                          const int *labels);

/* x0 (B, C, H, W) holds samples first_sample .. first_sample + B - 1 of the step's batch. */
Tensor *diffusion_training_loss(const Diffusion *d, UNet *m, Graph *g, Tensor *x0, const int *labels, uint64_t seed,
                                long step, int first_sample);

#endif
