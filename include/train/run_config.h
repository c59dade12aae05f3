/* run_config.h - everything a run is configured by: the model, diffusion, train and data
 * sections of a JSON config. Unknown sections or keys are errors naming them (io/config.h). */
#ifndef DIFFUSE_TRAIN_RUN_CONFIG_H
#define DIFFUSE_TRAIN_RUN_CONFIG_H

#include <cJSON.h>
#include <stdbool.h>

#include "diffusion/diffusion.h"
#include "io/config.h"
#include "nn/unet.h"

typedef struct {
  int steps, batch, micro_batch; /* micro_batch 0 or = batch: no accumulation */
  double lr, warmup, grad_clip, weight_decay, beta1, beta2, adam_eps, ema_decay;
  bool ema_warmup; /* decay min(ema_decay, (1 + step) / (10 + step)): early EMA tracks the weights */
  char lr_schedule[CFG_STRING_MAX]; /* constant | cosine | inverse_sqrt, after the warmup (train/schedule.h) */
  char ema_profile[CFG_STRING_MAX]; /* fixed (ema_decay, ema_warmup) | power (ema_gamma) */
  double ema_gamma;
  char loss[CFG_STRING_MAX];           /* simple | hybrid | vlb (diffusion/objective.h) */
  double p_uncond;                     /* class-conditional: label dropped to the null class (CFG) */
  char loss_weighting[CFG_STRING_MAX]; /* none | min_snr | likelihood (diffusion/objective.h) */
  double min_snr_gamma;
  int seed;
  int log_every, sample_every, ckpt_every, sample_n, sample_steps;
  char device[CFG_STRING_MAX]; /* cpu | cuda | cuda:N (backend/backend.h); --device overrides */
} TrainConfig;

typedef struct {
  char path[CFG_STRING_MAX];
  char split[CFG_STRING_MAX]; /* train | test */
  int center_crop;
  bool flip;
  int max_images;
  int cache_mb; /* stream folders larger than this when decoded (0: always cache) */
} DataConfig;

extern const CfgField TRAIN_CONFIG_FIELDS[], DATA_CONFIG_FIELDS[];
extern const int TRAIN_CONFIG_N_FIELDS, DATA_CONFIG_N_FIELDS;
void train_config_default(TrainConfig *c);
void data_config_default(DataConfig *c);

typedef struct {
  UNetConfig model;
  DiffusionConfig diffusion;
  TrainConfig train;
  DataConfig data;
} RunConfig;

/* Read and validate all sections of a config tree (defaults for absent keys). */
int run_config_read(const cJSON *root, const char *origin, RunConfig *rc, char *err, size_t errlen);
/* Whether section.key is a string key of the run config (for --set, see cfg_apply_override). */
bool run_config_key_is_string(const char *section, const char *key);
/* The resolved config as JSON (all sections, every key). */
cJSON *run_config_to_json(const RunConfig *rc);

#endif
