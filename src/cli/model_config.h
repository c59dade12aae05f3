/* model_config.h - resolve the model architecture for a command from --config and/or --ckpt. */
#ifndef DIFFUSE_CLI_MODEL_CONFIG_H
#define DIFFUSE_CLI_MODEL_CONFIG_H

#include <cJSON.h>

#include "nn/unet.h"

/* The architecture: from the checkpoint's embedded config when it has one, else from the config
 * file (needed for checkpoints without metadata, e.g. diffusers weights). *root_out (may be NULL)
 * receives the config tree used. Returns 0, or -1 with err set. */
int resolve_model_config(const char *config_path, const char *ckpt_path, UNetConfig *cfg, cJSON **root_out, char *err,
                         size_t errlen);

#endif
