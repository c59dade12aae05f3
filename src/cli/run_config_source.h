/* run_config_source.h - resolve the run config of a command from --config and/or --ckpt. */
#ifndef DIFFUSE_CLI_RUN_CONFIG_SOURCE_H
#define DIFFUSE_CLI_RUN_CONFIG_SOURCE_H

#include <cJSON.h>

#include "train/run_config.h"

/* The run config (architecture and diffusion): from the checkpoint's embedded config when it has
 * one, else from the config file (needed for checkpoints without metadata, e.g. diffusers
 * weights). Given both, a config file whose model or diffusion section differs from the embedded
 * one is an error listing the differing keys. Returns 0, or -1 with err set. */
int resolve_run_config(const char *config_path, const char *ckpt_path, RunConfig *rc, char *err, size_t errlen);

/* The denoiser commands (sample, eval, encode) refuse a classifier checkpoint (model.classifier): 0, or -1 +
 * a message saying what it is for. */
int require_denoiser(const RunConfig *rc, const char *ckpt_path, char *err, size_t errlen);

#endif
