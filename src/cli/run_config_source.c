/* run_config_source.c - find and validate the run config for a command; see run_config_source.h. */
#include "run_config_source.h"

#include <stdio.h>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "train/run_config.h"

int resolve_run_config(const char *config_path, const char *ckpt_path, RunConfig *rc, char *err, size_t errlen) {
  cJSON *root = NULL;
  const char *origin = NULL;
  if (ckpt_path) {
    root = checkpoint_read_config(ckpt_path, err, errlen);
    if (!root && err[0]) return -1;
    origin = ckpt_path;
  }
  if (!root && config_path) {
    root = cfg_load_file(config_path, err, errlen);
    if (!root) return -1;
    origin = config_path;
  }
  if (!root) {
    if (ckpt_path)
      return errorf(err, errlen, "%s: carries no model config (not written by diffuse): give the architecture with --config",
                    ckpt_path);
    return errorf(err, errlen, "no model: give --config FILE or --ckpt FILE");
  }
  const int status = run_config_read(root, origin, rc, err, errlen);
  cJSON_Delete(root);
  return status;
}
