/* schedule.h - the learning-rate and EMA-decay schedules of a training run, as pure functions of
 * the optimizer step (so a resumed run follows the same curve).
 *
 * Learning rate at step s (1-based: the s-th optimizer step), W = train.warmup, S = train.steps:
 *   warm(s) = min(1, s / W)  (1 without warmup), then
 *   constant       lr warm(s)
 *   cosine         lr warm(s) (1 + cos(pi p)) / 2,  p = (s - W) / (S - W) clamped to [0, 1]: from lr
 *                  after the warmup to 0 at the last step (torch's CosineAnnealingLR, eta_min 0)
 *   inverse_sqrt   lr warm(s) sqrt(max(W, 1) / max(s, W, 1)): lr at the end of the warmup, then
 *                  proportional to 1/sqrt(s) (Vaswani et al. 2017's schedule in this form)
 * EMA decay before step s's update (s 1-based):
 *   fixed   train.ema_decay, or min(ema_decay, s / (9 + s)) with train.ema_warmup
 *   power   (1 - 1/s)^(gamma + 1), gamma = train.ema_gamma: the power-function EMA of Karras et al.
 *           2024 (EDM2, eq. 3 with t = s); gamma 6.94 gives sigma_rel 0.05, 16.97 sigma_rel 0.1 ...
 *           train.ema_decay and ema_warmup do not apply.
 */
#ifndef DIFFUSE_TRAIN_SCHEDULE_H
#define DIFFUSE_TRAIN_SCHEDULE_H

#include "train/run_config.h"

/* The learning rate of optimizer step s >= 1. */
double schedule_lr(const TrainConfig *t, long s);
/* The EMA decay applied after optimizer step s >= 1. */
double schedule_ema_decay(const TrainConfig *t, long s);
/* 0, or -1 + a message naming the key: an unknown train.lr_schedule or train.ema_profile. */
int schedule_check(const TrainConfig *t, char *err, size_t errlen);

#endif
