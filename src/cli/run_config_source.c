/* run_config_source.c - find and validate the run config for a command; see run_config_source.h. */
#include "run_config_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "train/run_config.h"

static int read_source(cJSON *root, const char *origin, RunConfig *rc, char *err, size_t errlen) {
  const int status = run_config_read(root, origin, rc, err, errlen);
  cJSON_Delete(root);
  return status;
}

/* The model and diffusion keys on which two resolved configs differ, as "model.ch 128 vs 64, ...". */
static int differing_keys(const RunConfig *a, const RunConfig *b, char *out, size_t n) {
  cJSON *ja = run_config_to_json(a), *jb = run_config_to_json(b);
  int count = 0;
  size_t used = 0;
  out[0] = '\0';
  const char *const sections[] = {"model", "diffusion"};
  for (int s = 0; s < 2; s++) {
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(ja, sections[s]);
    for (const cJSON *ka = sa ? sa->child : NULL; ka; ka = ka->next) {
      const cJSON *kb = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(jb, sections[s]), ka->string);
      char *va = cJSON_PrintUnformatted(ka), *vb = kb ? cJSON_PrintUnformatted(kb) : xstrdup("(absent)");
      if (strcmp(va, vb) && used < n)
        used += (size_t)snprintf(out + used, n - used, "%s%s.%s %s vs %s", count++ ? ", " : "", sections[s], ka->string,
                                 va, vb);
      free(va), free(vb);
    }
  }
  cJSON_Delete(ja), cJSON_Delete(jb);
  return count;
}

int resolve_run_config(const char *config_path, const char *ckpt_path, RunConfig *rc, char *err, size_t errlen) {
  cJSON *embedded = NULL;
  if (ckpt_path) {
    embedded = checkpoint_read_config(ckpt_path, err, errlen);
    if (!embedded && err[0]) return -1;
  }
  if (!embedded && !config_path) {
    if (ckpt_path)
      return errorf(err, errlen, "%s: carries no model config (not written by diffuse): give the architecture with --config",
                    ckpt_path);
    return errorf(err, errlen, "no model: give --config FILE or --ckpt FILE");
  }
  if (!embedded) {
    cJSON *root = cfg_load_file(config_path, err, errlen);
    return root ? read_source(root, config_path, rc, err, errlen) : -1;
  }
  if (read_source(embedded, ckpt_path, rc, err, errlen)) return -1;
  if (!config_path) return 0;
  /* both: the checkpoint's config is the truth; a --config that disagrees on the model is an error */
  RunConfig given;
  cJSON *root = cfg_load_file(config_path, err, errlen);
  if (!root || read_source(root, config_path, &given, err, errlen)) return -1;
  char diff[512];
  const int n = differing_keys(rc, &given, diff, sizeof diff);
  if (n)
    return errorf(err, errlen,
                  "%s embeds its config, and --config %s differs from it in %d key(s): %s (checkpoint vs --config); "
                  "drop --config, or use the checkpoint's values",
                  ckpt_path, config_path, n, diff);
  return 0;
}

int require_denoiser(const RunConfig *rc, const char *ckpt_path, char *err, size_t errlen) {
  if (!rc->model.classifier) return 0;
  return errorf(err, errlen, "%s is a classifier checkpoint (model.classifier), not a denoiser: it guides sampling as "
                "diffuse sample --classifier", ckpt_path);
}
