/* trainer.h - the training loop of `diffuse train`: data, AdamW with warmup and clipping, EMA,
 * gradient accumulation, logs, sample grids, atomic checkpoints, exact resume, a clean stop when
 * the caller asks for one, and a stop with a named culprit on non-finite losses or gradients.
 *
 * The run directory (out_dir, with a samples/ sub-folder) is the caller's: it creates and locks it
 * (the CLI does, see src/cli/run_dir.h). Signals, progress display and exit codes are the
 * caller's too, through TrainCallbacks.
 */
#ifndef DIFFUSE_TRAIN_TRAINER_H
#define DIFFUSE_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>

#include "autograd/graph.h"
#include "train/run_config.h"

typedef struct {
  const char *out_dir; /* config.json, log.jsonl, ckpt.safetensors and samples/ are written here */
  const char *resume;  /* checkpoint path or NULL */
  bool skip_bad;
  const Backend *backend; /* where the model and the steps live (the CLI opens train.device) */
} TrainOptions;

/* One log line's numbers (also written to log.jsonl). */
typedef struct {
  long step;
  int steps;
  double loss, grad_norm, lr, img_per_s, eta_s, elapsed_s;
} TrainReport;

typedef struct {
  void *ctx;
  bool (*should_stop)(void *ctx);                      /* polled before each step; NULL: never */
  void (*on_report)(void *ctx, const TrainReport *r);  /* each log line; NULL r: the loop ended */
  void (*on_save)(void *ctx, bool begin);              /* brackets every checkpoint write */
  void (*on_sample)(void *ctx, long step, const char *path); /* a sample grid was written (rank 0) */
} TrainCallbacks;

typedef enum { TRAIN_FINISHED, TRAIN_STOPPED, TRAIN_FAILED } TrainOutcome;

typedef struct Trainer Trainer;

/* Load the data, build the model, check that a step fits in memory, load --resume (which must be
 * below train.steps): everything that can fail on bad input. Writes nothing. NULL + err on error.
 * rc must outlive the trainer. */
Trainer *trainer_open(const RunConfig *rc, const TrainOptions *opt, char *err, size_t errlen);
/* Write config.json, then train to train.steps or until should_stop, with a checkpoint at the end
 * (or stop). Messages on stderr. cb may be NULL. */
TrainOutcome trainer_run(Trainer *tr, const TrainCallbacks *cb);
void trainer_close(Trainer *tr); /* NULL is fine */
/* One optimizer step exactly as trainer_run takes it (data, loss, backward, non-finite checks,
 * clipping, warmup, AdamW, EMA), without logs, checkpoints or grids: what `diffuse bench` times.
 * 0, or -1 after a message (non-finite values, unreadable data). *loss may be NULL. */
int trainer_step(Trainer *tr, double *loss);
/* The trainer's autograd graph (to attach a GraphProfile, or read the FLOPs of the last forward). */
Graph *trainer_graph(Trainer *tr);

#endif
