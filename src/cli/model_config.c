/* model_config.c - find and validate the model section for a command; see model_config.h. */
#include "model_config.h"

#include <stdio.h>

#include "core/error.h"
#include "nn/checkpoint.h"

const char *const CONFIG_SECTIONS[] = {"model", NULL};

int config_read_model(const cJSON *root, const char *origin, UNetConfig *cfg, char *err, size_t errlen) {
  char inner[512];
  unet_config_default(cfg);
  if (cfg_check_sections(root, CONFIG_SECTIONS, inner, sizeof inner) ||
      cfg_read_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, cfg, inner, sizeof inner) ||
      unet_config_validate(cfg, inner, sizeof inner))
    return errorf(err, errlen, "%s: %s", origin, inner);
  return 0;
}

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
  const int rc = config_read_model(root, origin, cfg, err, errlen);
  if (rc == 0 && root_out) *root_out = root;
  else cJSON_Delete(root);
  return rc;
}
