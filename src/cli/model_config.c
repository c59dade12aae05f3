/* model_config.c - find and validate the model section for a command; see model_config.h. */
#include "model_config.h"

#include <stdio.h>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "train/run_config.h"

int resolve_model_config(const char *config_path, const char *ckpt_path, UNetConfig *cfg, cJSON **root_out, char *err,
                         size_t errlen) {
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
  RunConfig run;
  const int rc = run_config_read(root, origin, &run, err, errlen);
  if (rc == 0) *cfg = run.model;
  if (rc == 0 && root_out) *root_out = root;
  else cJSON_Delete(root);
  return rc;
}
