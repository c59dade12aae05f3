/* heldout_inputs.h - what `eval nll` and `eval loss` both read: a checkpoint's EMA weights and
 * held-out images fitted to its model. */
#ifndef DIFFUSE_CLI_HELDOUT_INPUTS_H
#define DIFFUSE_CLI_HELDOUT_INPUTS_H

#include <stddef.h>

#include "io/dataset.h"
#include "nn/unet.h"

/* model: initialised for the checkpoint's config; its EMA weights are loaded from ckpt, then at most
 * n images of `split` (train | test) of data, at the model's resolution and channels, into d (which
 * the caller frees, also on error). 0, or -1 with err set. */
int heldout_inputs_load(const char *ckpt, UNet *model, const char *data, const char *split, int n, Dataset *d,
                        char *err, size_t errlen);

#endif
