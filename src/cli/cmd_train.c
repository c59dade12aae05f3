/* cmd_train.c - `diffuse train`: build the run config from the file, --set overrides and flags
 * (flags win), then hand over to the trainer. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "nn/checkpoint.h"
#include "train/trainer.h"

static int set_number(cJSON *root, const char *section, const char *key, double v) {
  cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, section);
  if (!sec) sec = cJSON_AddObjectToObject(root, section);
  if (!cJSON_IsObject(sec)) return -1;
  cJSON_DeleteItemFromObjectCaseSensitive(sec, key);
  cJSON_AddNumberToObject(sec, key, v);
  return 0;
}

int cmd_train(int argc, char **argv) {
  const char *config_path = NULL, *data = NULL, *out = "out", *resume = NULL;
  int steps = 0, batch = 0, seed = -1;
  bool skip_bad = false, quiet = false;
  ArgList sets = {0};
  const ArgSpec specs[] = {
      {"--config", ARG_STRING, &config_path}, {"--data", ARG_STRING, &data},  {"--out", ARG_STRING, &out},
      {"--steps", ARG_INT, &steps},           {"--batch", ARG_INT, &batch},   {"--seed", ARG_INT, &seed},
      {"--resume", ARG_STRING, &resume},      {"--set", ARG_LIST, &sets},     {"--skip-bad", ARG_FLAG, &skip_bad},
      {"--quiet", ARG_FLAG, &quiet},
  };
  if (args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "train")) return 2;
  if (steps < 0 || batch < 0) {
    fprintf(stderr, "diffuse train: --steps and --batch must be positive\n");
    return 2;
  }
  char err[1024];
  cJSON *root = NULL;
  const char *origin = config_path;
  if (config_path) {
    root = cfg_load_file(config_path, err, sizeof err);
  } else if (resume) {
    root = checkpoint_read_config(resume, err, sizeof err);
    origin = resume;
    if (!root && !err[0]) snprintf(err, sizeof err, "%s carries no config: give --config", resume);
  } else {
    fprintf(stderr, "diffuse train: --config FILE is required (see diffuse train --help)\n");
    return 2;
  }
  if (!root) {
    fprintf(stderr, "diffuse train: %s\n", err);
    return 1;
  }
  int rc = 0;
  for (int i = 0; i < sets.n && rc == 0; i++) rc = cfg_apply_override(root, sets.items[i], err, sizeof err);
  if (rc == 0 && data) {
    cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!sec) sec = cJSON_AddObjectToObject(root, "data");
    cJSON_DeleteItemFromObjectCaseSensitive(sec, "path");
    cJSON_AddStringToObject(sec, "path", data);
  }
  if (rc == 0 && steps) rc = set_number(root, "train", "steps", steps);
  if (rc == 0 && batch) rc = set_number(root, "train", "batch", batch);
  if (rc == 0 && seed >= 0) rc = set_number(root, "train", "seed", seed);
  RunConfig run;
  if (rc == 0) rc = run_config_read(root, origin, &run, err, sizeof err);
  cJSON_Delete(root);
  if (rc) {
    fprintf(stderr, "diffuse train: %s\n", err);
    return 1;
  }
  const TrainOptions opt = {out, resume, skip_bad, quiet};
  return train_run(&run, &opt);
}
