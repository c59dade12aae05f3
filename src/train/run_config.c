/* run_config.c - the sections of a run config (model, diffusion, train, data): field tables,
 * defaults, cross-field validation and the resolved JSON written to out/config.json and into
 * checkpoints. */
#include "train/run_config.h"

#include "diffusion/objective.h"

#include <string.h>

#include "core/error.h"
#include "train/schedule.h"

#define F(k, t, m, lo, hi, help) {k, t, offsetof(TrainConfig, m), 0, lo, hi, help}
const CfgField TRAIN_CONFIG_FIELDS[] = {
    F("steps", CFG_INT, steps, 1, 1e9, "optimizer steps"),
    F("batch", CFG_INT, batch, 1, 65536, "images per optimizer step"),
    F("micro_batch", CFG_INT, micro_batch, 0, 65536, "images per forward/backward (gradient accumulation); 0 = batch"),
    F("lr", CFG_FLOAT, lr, 0, 1, "AdamW learning rate"),
    F("warmup", CFG_FLOAT, warmup, 0, 1e9, "linear warmup steps"),
    F("grad_clip", CFG_FLOAT, grad_clip, 0, 1e9, "max gradient norm (0: no clipping)"),
    F("weight_decay", CFG_FLOAT, weight_decay, 0, 1, "AdamW weight decay"),
    F("beta1", CFG_FLOAT, beta1, 0, 0.999999, "AdamW beta1"),
    F("beta2", CFG_FLOAT, beta2, 0, 0.999999999, "AdamW beta2"),
    F("adam_eps", CFG_FLOAT, adam_eps, 0, 1, "AdamW epsilon"),
    F("ema_decay", CFG_FLOAT, ema_decay, 0, 0.999999999, "EMA decay of the weights"),
    F("ema_warmup", CFG_BOOL, ema_warmup, 0, 0, "ramp the EMA decay up as (1+step)/(10+step)"),
    F("lr_schedule", CFG_STRING, lr_schedule, 0, 0, "after the warmup: constant, cosine (to 0 at train.steps) or inverse_sqrt"),
    F("ema_profile", CFG_STRING, ema_profile, 0, 0, "fixed (ema_decay) or power: decay (1 - 1/step)^(ema_gamma + 1), Karras et al. 2024"),
    F("ema_gamma", CFG_FLOAT, ema_gamma, 0.01, 1e6, "the power EMA's exponent (6.94: sigma_rel 0.05; 16.97: 0.1)"),
    F("loss", CFG_STRING, loss, 0, 0, "simple (MSE), or with diffusion.learn_sigma hybrid (MSE + 0.001 L_vlb) or vlb (L_vlb, importance-sampled t)"),
    F("p_uncond", CFG_FLOAT, p_uncond, 0, 0.999, "class-conditional: probability of training on the null class, for classifier-free guidance (Ho & Salimans 2022: 0.1 or 0.2)"),
    F("loss_weighting", CFG_STRING, loss_weighting, 0, 0, "none, min_snr (Hang et al. 2023) or likelihood (continuous SDEs, importance-sampled t)"),
    F("min_snr_gamma", CFG_FLOAT, min_snr_gamma, 1e-6, 1e6, "min_snr: the SNR cap gamma"),
    F("seed", CFG_INT, seed, 0, 2147483647, "seed of all randomness"),
    F("log_every", CFG_INT, log_every, 1, 1e9, "steps between log lines"),
    F("sample_every", CFG_INT, sample_every, 0, 1e9, "steps between sample grids (0: only at the end)"),
    F("ckpt_every", CFG_INT, ckpt_every, 0, 1e9, "steps between checkpoints (0: only at the end)"),
    F("sample_n", CFG_INT, sample_n, 1, 1024, "images in a sample grid"),
    F("sample_steps", CFG_INT, sample_steps, 2, 10000, "DDIM steps for sample grids"),
    F("device", CFG_STRING, device, 0, 0, "where training runs: cpu, cuda or cuda:N (see diffuse info --devices)"),
};
#undef F
const int TRAIN_CONFIG_N_FIELDS = (int)(sizeof TRAIN_CONFIG_FIELDS / sizeof TRAIN_CONFIG_FIELDS[0]);

#define F(k, t, m, lo, hi, help) {k, t, offsetof(DataConfig, m), 0, lo, hi, help}
const CfgField DATA_CONFIG_FIELDS[] = {
    F("path", CFG_STRING, path, 0, 0, "image folder, CIFAR-10 batches dir, IDX file/dir, or procedural:COUNT (generated shapes)"),
    F("split", CFG_STRING, split, 0, 0, "train | test (CIFAR-10 binaries, IDX)"),
    F("center_crop", CFG_INT, center_crop, 0, 100000, "center square crop before resizing (0: none)"),
    F("flip", CFG_BOOL, flip, 0, 0, "random horizontal flips"),
    F("max_images", CFG_INT, max_images, 0, 1e9, "use at most this many images (0: all)"),
    F("cache_mb", CFG_INT, cache_mb, 0, 1e9, "decoded-image cache limit in MiB: folders above it are streamed, CIFAR-10 / IDX refused (0: no limit)"),
};
#undef F
const int DATA_CONFIG_N_FIELDS = (int)(sizeof DATA_CONFIG_FIELDS / sizeof DATA_CONFIG_FIELDS[0]);

void train_config_default(TrainConfig *c) {
  memset(c, 0, sizeof *c);
  *c = (TrainConfig){.steps = 800000, .batch = 128, .lr = 2e-4, .warmup = 5000, .grad_clip = 1.0, .beta1 = 0.9,
                     .beta2 = 0.999, .adam_eps = 1e-8, .ema_decay = 0.9999, .ema_warmup = true, .seed = 0, .log_every = 50,
                     .sample_every = 5000, .ckpt_every = 5000, .sample_n = 64, .sample_steps = 50};
  strcpy(c->device, "cpu");
  strcpy(c->lr_schedule, "constant");
  strcpy(c->ema_profile, "fixed");
  c->ema_gamma = 6.94;
  strcpy(c->loss, "simple");
  strcpy(c->loss_weighting, "none");
  c->min_snr_gamma = 5.0;
}

void data_config_default(DataConfig *c) {
  memset(c, 0, sizeof *c);
  strcpy(c->split, "train");
  c->cache_mb = 4096;
}

static const char *const SECTIONS[] = {"model", "diffusion", "train", "data", NULL};

bool run_config_key_is_string(const char *section, const char *key) {
  const CfgField *const tables[] = {UNET_CONFIG_FIELDS, DIFFUSION_CONFIG_FIELDS, TRAIN_CONFIG_FIELDS, DATA_CONFIG_FIELDS};
  const int counts[] = {UNET_CONFIG_N_FIELDS, DIFFUSION_CONFIG_N_FIELDS, TRAIN_CONFIG_N_FIELDS, DATA_CONFIG_N_FIELDS};
  for (int t = 0; t < 4; t++)
    if (!strcmp(section, SECTIONS[t]))
      for (int i = 0; i < counts[t]; i++)
        if (!strcmp(tables[t][i].key, key)) return tables[t][i].type == CFG_STRING;
  return false;
}

int run_config_read(const cJSON *root, const char *origin, RunConfig *rc, char *err, size_t errlen) {
  char e[768];
  unet_config_default(&rc->model);
  diffusion_config_default(&rc->diffusion);
  train_config_default(&rc->train);
  data_config_default(&rc->data);
  /* the defaults that depend on diffusion.type come first, the section's own keys on top */
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "diffusion"), "type");
  if (cJSON_IsString(type)) diffusion_config_type_defaults(&rc->diffusion, type->valuestring);
  if (cfg_check_sections(root, SECTIONS, e, sizeof e) ||
      cfg_read_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &rc->model, e, sizeof e) ||
      cfg_read_section(root, "diffusion", DIFFUSION_CONFIG_FIELDS, DIFFUSION_CONFIG_N_FIELDS, &rc->diffusion, e, sizeof e) ||
      cfg_read_section(root, "train", TRAIN_CONFIG_FIELDS, TRAIN_CONFIG_N_FIELDS, &rc->train, e, sizeof e) ||
      cfg_read_section(root, "data", DATA_CONFIG_FIELDS, DATA_CONFIG_N_FIELDS, &rc->data, e, sizeof e) ||
      unet_config_validate(&rc->model, e, sizeof e))
    return errorf(err, errlen, "%s: %s", origin, e);
  Diffusion d;
  if (diffusion_init(&d, &rc->diffusion, e, sizeof e)) return errorf(err, errlen, "%s: %s", origin, e);
  Objective o;
  const int bad_objective = objective_init(&o, &d, rc->train.loss, rc->train.loss_weighting, rc->train.min_snr_gamma, e, sizeof e);
  objective_free(&o);
  diffusion_free(&d);
  if (bad_objective) return errorf(err, errlen, "%s: %s", origin, e);
  rc->model.learn_sigma = rc->diffusion.learn_sigma;
  if (rc->train.p_uncond > 0 && rc->model.num_classes == 0)
    return errorf(err, errlen, "%s: train.p_uncond drops class labels, so it needs a class-conditional model "
                               "(model.num_classes > 0)", origin);
  rc->model.null_class = rc->train.p_uncond > 0;
  if (rc->model.classifier) { /* trained with cross-entropy on x_t: the denoiser's objective keys do not apply */
    const char *bad = rc->diffusion.learn_sigma ? "diffusion.learn_sigma" : strcmp(rc->train.loss, "simple") ? "train.loss"
                      : strcmp(rc->train.loss_weighting, "none") ? "train.loss_weighting" : rc->train.p_uncond > 0 ? "train.p_uncond" : NULL;
    if (bad)
      return errorf(err, errlen, "%s: %s is for denoisers; a classifier (model.classifier) trains with cross-entropy "
                    "on x_t at uniformly drawn times: leave it at its default", origin, bad);
  }
  const TrainConfig *t = &rc->train;
  if (t->micro_batch && t->batch % t->micro_batch)
    return errorf(err, errlen, "%s: train.micro_batch %d must divide train.batch %d", origin, t->micro_batch, t->batch);
  if (strcmp(rc->data.split, "train") && strcmp(rc->data.split, "test"))
    return errorf(err, errlen, "%s: data.split: '%s' is not train or test", origin, rc->data.split);
  if (schedule_check(t, e, sizeof e)) return errorf(err, errlen, "%s: %s", origin, e);
  return 0;
}

cJSON *run_config_to_json(const RunConfig *rc) {
  cJSON *root = cJSON_CreateObject();
  cfg_write_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &rc->model);
  cfg_write_section(root, "diffusion", DIFFUSION_CONFIG_FIELDS, DIFFUSION_CONFIG_N_FIELDS, &rc->diffusion);
  cfg_write_section(root, "train", TRAIN_CONFIG_FIELDS, TRAIN_CONFIG_N_FIELDS, &rc->train);
  cfg_write_section(root, "data", DATA_CONFIG_FIELDS, DATA_CONFIG_N_FIELDS, &rc->data);
  return root;
}

