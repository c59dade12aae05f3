/* checkpoint.h - U-Net checkpoints as safetensors.
 *
 * Tensors under the plain diffusers names hold the inference weights: the EMA when the model was
 * trained with one, else the weights themselves. So a diffuse checkpoint is a valid diffusers
 * UNet2DModel state dict, and diffusers weights load as a checkpoint. Training checkpoints add
 * "online.<name>" (the raw weights), "optim.m.<name>" and "optim.v.<name>" (AdamW moments).
 * __metadata__ holds "format" = "diffuse/1", "config" (the resolved JSON config) and, for training
 * checkpoints, "step" and "seed", and with train.loss vlb the importance sampler's table as
 * "train.loss_history" (ignored by inference loads). Older attention names (query/key/value/proj_attn) are accepted
 * on load. Writes are atomic (safetensors.h).
 */
#ifndef DIFFUSE_NN_CHECKPOINT_H
#define DIFFUSE_NN_CHECKPOINT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "nn/unet.h"

#define CHECKPOINT_FORMAT "diffuse/1"
#define CHECKPOINT_MAX_STEP 1000000000 /* = the largest train.steps */

typedef struct {
  long step;
  uint64_t seed;
  /* NULL, or a host table of rows x cols floats saved and loaded as "train.loss_history" (the L_vlb
   * importance sampler of diffusion/objective.h); loading fills it when the file has one (of that
   * shape, else an error) and sets loss_history_found */
  float *loss_history;
  int loss_history_rows, loss_history_cols;
  bool loss_history_found;
} TrainProgress;

/* Save model weights; with progress != NULL also the online weights and AdamW moments (which the
 * table must have). `config` is the resolved config to embed (may be NULL). */
int checkpoint_save(const char *path, const UNet *m, const cJSON *config, const TrainProgress *progress, char *err,
                    size_t errlen);

typedef struct {
  bool use_ema;      /* inference: plain names (EMA) rather than online.* */
  bool for_training; /* load online weights, EMA and moments (the table must have optimizer + ema) */
} CheckpointLoadOptions;

/* Read the config embedded in a checkpoint: returns a new cJSON (caller deletes) or NULL when the
 * file carries none (err empty) or cannot be read (err set). */
cJSON *checkpoint_read_config(const char *path, char *err, size_t errlen);

/* Fill an initialised model (unet_init with the matching config) from a checkpoint. Every
 * parameter must be present with the right shape and finite values; unknown tensors are errors
 * too; a training checkpoint's step and seed must be decimal integers (step <= CHECKPOINT_MAX_STEP). */
int checkpoint_load(const char *path, UNet *m, const CheckpointLoadOptions *opt, TrainProgress *progress, char *err,
                    size_t errlen);

#endif
