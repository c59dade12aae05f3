/* trainer.h - the training loop of `diffuse train`: data, AdamW with warmup and clipping, EMA,
 * gradient accumulation, logs, sample grids, atomic checkpoints, exact resume, clean shutdown
 * on SIGINT/SIGTERM, and a stop with a named culprit on non-finite losses or gradients.
 */
#ifndef DIFFUSE_TRAIN_TRAINER_H
#define DIFFUSE_TRAIN_TRAINER_H

#include <stdbool.h>

#include "train/run_config.h"

typedef struct {
  const char *out_dir;
  const char *resume; /* checkpoint path or NULL */
  bool skip_bad;
  bool quiet;         /* no progress bar even on a TTY */
} TrainOptions;

/* Runs the whole training; returns the process exit code (0 ok, 1 error), messages on stderr. */
int train_run(const RunConfig *rc, const TrainOptions *opt);

#endif
