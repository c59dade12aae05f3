/* objective.h - the training loss of a diffusion model on a batch.
 *
 * For each sample b of the (full, pre-accumulation) batch, tau_b and the noise eps_b are drawn from
 * the counter-based RNG at (seed, train_stream(step, b, purpose)), so a run is reproducible and a
 * resumed run continues bit-identically; gradient accumulation draws exactly what one large batch
 * would. Loss = mean w(tau) ||net(c_in x_tau, label(tau)) - F*||^2 with the target F* of
 * diffusion_network_target (eps, x0, v = alpha eps - sigma x0, EDM's preconditioned target, the flow
 * velocity; see diffusion.h for why the DSM weighting reduces to this) and w = 1, or:
 *  - min-SNR-gamma (Hang et al. 2023): w = min(SNR, gamma) times the factor that turns the MSE of F
 *    into that of x0_hat, (sigma c_f / alpha)^2 (eps: min(SNR, gamma) / SNR; v: min(SNR, gamma) / (SNR + 1));
 *  - likelihood weighting for the continuous SDEs (Song et al. 2021, "Maximum likelihood training of
 *    score-based diffusion models"): lambda = g^2, i.e. g^2 / sigma^2 on the eps MSE, with t drawn
 *    from p(t) proportional to g^2 / sigma^2 (importance sampling) and w = (g^2 / sigma^2) / ((1 - t_eps) p(t)),
 *    so the loss estimates score_sde's likelihood-weighted loss under uniform t, with far less variance.
 * With diffusion.learn_sigma (Nichol & Dhariwal 2021, improved-diffusion's training_losses) the network
 * outputs F and v (2C channels) and train.loss picks:
 *  - hybrid: L_simple on F (weighted as above) + (T / 1000) L_t, L_t the bound's term at t in bits/dim
 *    (ag_vlb_loss: the KL of the posterior and the model's step, or the decoder at t = 0) with its
 *    gradient stopped at the mean, so the bound trains only the variance (lambda = 0.001 of L_vlb = T L_t);
 *  - vlb: L_vlb alone, both outputs trained, t importance-sampled (LossHistory): w = 1 / p_t on L_t.
 */
#ifndef DIFFUSION_OBJECTIVE_H
#define DIFFUSION_OBJECTIVE_H

#include "autograd/graph.h"
#include "diffusion/diffusion.h"
#include "nn/unet.h"

typedef enum {
  STREAM_TAU = 0,
  STREAM_NOISE = 1,
  STREAM_INDEX = 2,
  STREAM_FLIP = 3,
  STREAM_DROPOUT = 4,
  STREAM_LABEL_DROP = 5
} TrainStreamPurpose;

typedef enum { WEIGHTING_NONE, WEIGHTING_MIN_SNR, WEIGHTING_LIKELIHOOD } LossWeightingKind;

typedef struct {
  LossWeightingKind kind;
  double gamma; /* min_snr */
  /* likelihood: the sampling density is g^2 / sigma^2 interpolated linearly (f_k at t_k) on n
   * segments of a log-spaced grid t_0 = t_eps .. t_n = 1, cdf_k its integral up to t_k, total = cdf_n */
  int n;
  double *t, *f, *cdf, total;
} LossWeighting;

/* name: none | min_snr | likelihood. 0, or -1 + a message for a process it does not apply to. */
int loss_weighting_init(LossWeighting *w, const Diffusion *d, const char *name, double gamma, char *err, size_t errlen);
void loss_weighting_free(LossWeighting *w);
/* The training tau for u in [0, 1) (diffusion_sample_tau unless likelihood weighting samples it)
 * and the weight of a sample at tau. */
double loss_weighting_sample_tau(const LossWeighting *w, const Diffusion *d, double u);
double loss_weighting_weight(const LossWeighting *w, const Diffusion *d, double tau);

typedef enum { LOSS_SIMPLE, LOSS_HYBRID, LOSS_VLB } LossKind;

#define LOSS_HISTORY_PER_T 10
#define LOSS_HISTORY_UNIFORM 0.001
/* improved-diffusion's LossSecondMomentResampler: the last LOSS_HISTORY_PER_T bound terms of each t;
 * once every t has that many, t is drawn with p_t = (1 - 0.001) sqrt(mean L_t^2) / sum + 0.001 / T,
 * uniform until then. The table is training state (saved in checkpoints, so a resumed run draws the
 * same t). */
typedef struct {
  int T;
  float *table; /* (T, 1 + LOSS_HISTORY_PER_T): the count, then the terms oldest first */
  double *p, *cdf; /* (T), (T + 1): the current distribution (uniform while not warm) */
  bool warm;
} LossHistory;

typedef struct {
  LossKind loss;
  LossWeighting weighting;
  LossHistory history; /* vlb */
} Objective;

/* loss: simple | hybrid | vlb; weighting as loss_weighting_init. 0, or -1 + a message naming the
 * train.* or diffusion.* key at fault. */
int objective_init(Objective *o, const Diffusion *d, const char *loss, const char *weighting, double gamma, char *err,
                   size_t errlen);
void objective_free(Objective *o);
/* vlb: append the bound terms of one step, (tau[i], terms[i]) in sample order, and recompute p.
 * No-op for the other losses. */
void objective_record_terms(Objective *o, const double *tau, const double *terms, int n);
/* vlb: after the table was loaded (checkpoint), recompute p; -1 + a message when it is not a valid table
 * (a count that is not an integer in [0, LOSS_HISTORY_PER_T], a term that is not finite). */
int objective_history_loaded(Objective *o, char *err, size_t errlen);

/* Stream id for sample `sample` (index within the full batch) of step `step`. */
uint64_t train_stream(long step, int sample, TrainStreamPurpose purpose);

/* The loss for given noise levels tau (B, host) and noise (B, C, H, W, a tensor of the graph):
 * x_tau = alpha x0 + sigma noise. The forward process and the target run on the graph's backend
 * (its forward_mix op). With a learned variance, *terms (may be NULL) gets the per-sample bound terms
 * L_t (B, bits/dim, a graph tensor); otherwise NULL. */
Tensor *diffusion_loss_at(const Diffusion *d, const Objective *o, UNet *m, Graph *g, Tensor *x0, const double *tau,
                          Tensor *noise, const int *labels, Tensor **terms);

/* x0 (B, C, H, W) holds samples first_sample .. first_sample + B - 1 of the step's batch. tau_out (B,
 * host) or NULL receives the drawn noise levels; terms as diffusion_loss_at. */
Tensor *diffusion_training_loss(const Diffusion *d, const Objective *o, UNet *m, Graph *g, Tensor *x0,
                                const int *labels, uint64_t seed, long step, int first_sample, double *tau_out,
                                Tensor **terms);
/* A noise-conditional classifier's training loss (Dhariwal & Nichol 2021): cross-entropy of its logits at
 * (c_in x_t, tau) against labels, x_t = alpha x0 + sigma eps with tau and eps drawn from the same streams as
 * diffusion_training_loss; the objective gives tau's distribution (uniform). */
Tensor *classifier_training_loss(const Diffusion *d, const Objective *o, UNet *m, Graph *g, Tensor *x0,
                                 const int *labels, uint64_t seed, long step, int first_sample);
/* The classifier's logits (B, num_classes) for x (B, C, H, W) at one time tau, fed as it was trained: c_in x
 * and the time input of diffusion_network_io. The gradient reaches x when it requires one. */
Tensor *classifier_logits(const Diffusion *d, UNet *m, Graph *g, Tensor *x, double tau);

#endif
