/* heldout_inputs.c - a checkpoint's EMA weights and held-out images; see heldout_inputs.h. */
#include "heldout_inputs.h"

#include <string.h>

#include "nn/checkpoint.h"

int heldout_inputs_load(const char *ckpt, UNet *model, const char *data, const char *split, int n, Dataset *d,
                        char *err, size_t errlen) {
  const CheckpointLoadOptions lo = {.use_ema = true};
  if (checkpoint_load(ckpt, model, &lo, NULL, err, errlen)) return -1;
  const UNetConfig *mc = &model->cfg;
  const DatasetOptions dopt = {.kind = DATASET_AUTO, .path = data, .resolution = mc->resolution,
                               .channels = mc->in_channels, .train_split = !strcmp(split, "train"), .max_images = n,
                               .with_labels = mc->num_classes > 0, /* an image folder's labels: its sub-folders */
                               .cache_limit_bytes = (size_t)4096 << 20};
  return dataset_load(d, &dopt, err, errlen);
}
