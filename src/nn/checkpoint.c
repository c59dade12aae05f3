/* checkpoint.c - save/load U-Net checkpoints; see checkpoint.h. */
#include "nn/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"

static const char *const LOSS_HISTORY = "train.loss_history";
static const char *const PREFIX_ONLINE = "online.", *const PREFIX_M = "optim.m.", *const PREFIX_V = "optim.v.";

/* Legacy diffusers attention names: ".to_q." was ".query.", etc. */
static const char *const ALIASES[][2] = {
    {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};

/* One parameter of one flat buffer, downloaded when the writer reaches it. */
typedef struct {
  const ParamTable *p;
  const BackendMem *buf;
  int index;
} SavedParam;

static void read_saved_param(void *ctx, float *out) {
  const SavedParam *s = ctx;
  params_read(s->p, s->buf, s->index, out);
}

static void add_buffer(StWriter *w, const ParamTable *p, const BackendMem *buf, const char *prefix, char *names,
                       size_t name_stride, SavedParam *saved, int *k) {
  for (int i = 0; i < p->count; i++) {
    char *name = names + (size_t)*k * name_stride;
    snprintf(name, name_stride, "%s%s", prefix, p->info[i].name);
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < p->info[i].ndim; d++) shape[d] = p->info[i].shape[d];
    saved[*k] = (SavedParam){p, buf, i};
    st_writer_add_f32_from(w, name, p->info[i].ndim, shape, read_saved_param, &saved[*k]);
    (*k)++;
  }
}

int checkpoint_save(const char *path, const UNet *m, const cJSON *config, const TrainProgress *progress, char *err,
                    size_t errlen) {
  const ParamTable *p = &m->params;
  CHECK(!progress || (p->adam_m && p->adam_v));
  StWriter w;
  st_writer_init(&w);
  st_writer_set_meta(&w, "format", CHECKPOINT_FORMAT);
  if (config) {
    char *json = cJSON_PrintUnformatted(config);
    st_writer_set_meta(&w, "config", json);
    free(json);
  }
  const size_t stride = PARAM_NAME_MAX + 16;
  char *names = xmalloc((size_t)p->count * 4 * stride);
  SavedParam *saved = xmalloc((size_t)p->count * 4 * sizeof *saved);
  int k = 0;
  add_buffer(&w, p, p->ema ? p->ema : p->data, "", names, stride, saved, &k);
  if (progress) {
    char num[32];
    snprintf(num, sizeof num, "%ld", progress->step);
    st_writer_set_meta(&w, "step", num);
    snprintf(num, sizeof num, "%" PRIu64, progress->seed);
    st_writer_set_meta(&w, "seed", num);
    if (p->ema) add_buffer(&w, p, p->data, PREFIX_ONLINE, names, stride, saved, &k);
    add_buffer(&w, p, p->adam_m, PREFIX_M, names, stride, saved, &k);
    add_buffer(&w, p, p->adam_v, PREFIX_V, names, stride, saved, &k);
    if (progress->loss_history) {
      const int64_t shape[2] = {progress->loss_history_rows, progress->loss_history_cols};
      st_writer_add_f32(&w, LOSS_HISTORY, 2, shape, progress->loss_history);
    }
  }
  const int rc = st_writer_save(&w, path, err, errlen);
  st_writer_free(&w);
  free(names);
  free(saved);
  return rc;
}

cJSON *checkpoint_read_config(const char *path, char *err, size_t errlen) {
  SafeTensors st;
  if (err && errlen) err[0] = '\0';
  if (st_load(&st, path, err, errlen) != 0) return NULL;
  const char *json = st_meta_get(&st, "config");
  cJSON *cfg = json ? cJSON_Parse(json) : NULL;
  if (json && !cJSON_IsObject(cfg)) {
    cJSON_Delete(cfg);
    cfg = NULL;
    errorf(err, errlen, "%s: the embedded config is not a JSON object", path);
  }
  st_free(&st);
  return cfg;
}

/* Find prefix+name, or prefix+legacy alias of name. */
static int find_tensor(const SafeTensors *st, const char *prefix, const char *name) {
  char want[PARAM_NAME_MAX + 32];
  snprintf(want, sizeof want, "%s%s", prefix, name);
  for (int i = 0; i < st->n_tensors; i++)
    if (strcmp(st->tensors[i].name, want) == 0) return i;
  for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++) {
    const char *at = strstr(name, ALIASES[a][0]);
    if (!at) continue;
    snprintf(want, sizeof want, "%s%.*s%s%s", prefix, (int)(at - name), name, ALIASES[a][1],
             at + strlen(ALIASES[a][0]));
    for (int i = 0; i < st->n_tensors; i++)
      if (strcmp(st->tensors[i].name, want) == 0) return i;
  }
  return -1;
}

static void append(char *list, size_t cap, int *count, const char *name) {
  const size_t len = strlen(list);
  if (*count < 8) snprintf(list + len, cap - len, "%s%s", len ? ", " : "", name);
  (*count)++;
}

/* Fill buf (a flat buffer of p) from tensors prefix+name, through host, a buffer of the largest
 * parameter's size. */
static int load_buffer(const char *path, ParamTable *p, const SafeTensors *st, const char *prefix, BackendMem *buf,
                       float *host, bool *used, char *err, size_t errlen) {
  char missing[1024] = "";
  int n_missing = 0;
  for (int i = 0; i < p->count; i++) {
    const ParamInfo *pi = &p->info[i];
    const int k = find_tensor(st, prefix, pi->name);
    if (k < 0) {
      char full[PARAM_NAME_MAX + 32];
      snprintf(full, sizeof full, "%s%s", prefix, pi->name);
      append(missing, sizeof missing, &n_missing, full);
      continue;
    }
    const StTensor *t = &st->tensors[k];
    bool same = (size_t)t->numel == pi->numel && t->ndim == pi->ndim;
    for (int d = 0; same && d < pi->ndim; d++) same = t->shape[d] == pi->shape[d];
    /* a Linear weight stored as a 1x1 conv kernel (or back) is the same tensor */
    if (!same && t->numel == pi->numel && pi->ndim == 2 && t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1)
      same = t->shape[0] == pi->shape[0] && t->shape[1] == pi->shape[1];
    if (!same) {
      char shape[96] = "";
      for (int d = 0; d < t->ndim; d++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? "," : "", (long long)t->shape[d]);
      char want[96] = "";
      for (int d = 0; d < pi->ndim; d++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", d ? "," : "", pi->shape[d]);
      return errorf(err, errlen,
                    "%s: tensor %s has shape [%s] but the model needs [%s]: the checkpoint is of another "
                    "architecture (check --config: the model section, diffusion.learn_sigma, train.p_uncond)",
                    path, t->name, shape, want);
    }
    char inner[256];
    if (st_tensor_to_f32(t, host, inner, sizeof inner) != 0)
      return errorf(err, errlen, "%s: %s (a corrupt checkpoint, or one from a diverged run)", path, inner);
    params_write(p, buf, i, host);
    used[k] = true;
  }
  if (n_missing)
    return errorf(err, errlen, "%s: %d tensor(s) missing: %s%s (is this a checkpoint of this architecture?)", path,
                  n_missing, missing, n_missing > 8 ? ", ..." : "");
  return 0;
}

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* A metadata value that must be a decimal integer in [0, max]. */
static int read_count(const char *path, const char *key, const char *text, uint64_t max, uint64_t *out, char *err,
                      size_t errlen) {
  if (!text) return errorf(err, errlen, "%s: not a training checkpoint (no %s in its metadata): cannot resume from it", path, key);
  bool digits = text[0] != '\0' && strlen(text) <= 20;
  for (const char *c = text; digits && *c; c++) digits = *c >= '0' && *c <= '9';
  errno = 0;
  const unsigned long long v = digits ? strtoull(text, NULL, 10) : 0;
  if (!digits || errno || v > max)
    return errorf(err, errlen, "%s: metadata %s is \"%.40s\", not an integer in [0, %llu]: the checkpoint is corrupt", path,
                  key, text, (unsigned long long)max);
  *out = v;
  return 0;
}

static int load_loss_history(const char *path, const SafeTensors *st, TrainProgress *progress, char *err,
                             size_t errlen) {
  const StTensor *t = st_find(st, LOSS_HISTORY);
  const int rows = progress->loss_history_rows, cols = progress->loss_history_cols;
  progress->loss_history_found = t != NULL;
  if (!t) return 0; /* trained with another train.loss: the caller starts the history afresh */
  if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
    return errorf(err, errlen, "%s: %s must have shape [%d, %d] for this diffusion.T", path, LOSS_HISTORY, rows, cols);
  char inner[256];
  if (st_tensor_to_f32(t, progress->loss_history, inner, sizeof inner))
    return errorf(err, errlen, "%s: %s (a corrupt checkpoint)", path, inner);
  return 0;
}

int checkpoint_load(const char *path, UNet *m, const CheckpointLoadOptions *opt, TrainProgress *progress, char *err,
                    size_t errlen) {
  ParamTable *p = &m->params;
  SafeTensors st;
  if (st_load(&st, path, err, errlen) != 0) return -1;
  bool *used = xcalloc((size_t)st.n_tensors + 1, sizeof *used);
  size_t largest = 1;
  for (int i = 0; i < p->count; i++)
    if (p->info[i].numel > largest) largest = p->info[i].numel;
  float *host = xmalloc(largest * sizeof(float));
  bool has_online = false;
  for (int i = 0; i < st.n_tensors; i++) has_online |= has_prefix(st.tensors[i].name, PREFIX_ONLINE);
  int rc;
  if (opt->for_training) {
    CHECK(p->adam_m && p->ema);
    uint64_t step = 0, seed = 0;
    rc = read_count(path, "step", st_meta_get(&st, "step"), CHECKPOINT_MAX_STEP, &step, err, errlen);
    if (rc == 0) rc = read_count(path, "seed", st_meta_get(&st, "seed"), UINT64_MAX, &seed, err, errlen);
    if (rc == 0) rc = load_buffer(path, p, &st, has_online ? PREFIX_ONLINE : "", p->data, host, used, err, errlen);
    if (rc == 0) rc = load_buffer(path, p, &st, "", p->ema, host, used, err, errlen);
    if (rc == 0) rc = load_buffer(path, p, &st, PREFIX_M, p->adam_m, host, used, err, errlen);
    if (rc == 0) rc = load_buffer(path, p, &st, PREFIX_V, p->adam_v, host, used, err, errlen);
    if (rc == 0 && progress && progress->loss_history) rc = load_loss_history(path, &st, progress, err, errlen);
    if (rc == 0 && progress) {
      progress->step = (long)step;
      progress->seed = seed;
    }
  } else {
    const char *prefix = (!opt->use_ema && has_online) ? PREFIX_ONLINE : "";
    rc = load_buffer(path, p, &st, prefix, p->data, host, used, err, errlen);
  }
  if (rc == 0) { /* anything that is not some prefix + a parameter name is from another model */
    const char *const prefixes[] = {"", PREFIX_ONLINE, PREFIX_M, PREFIX_V};
    for (int i = 0; i < p->count; i++)
      for (int k = 0; k < 4; k++) {
        const int t = find_tensor(&st, prefixes[k], p->info[i].name);
        if (t >= 0) used[t] = true;
      }
    char extra[1024] = "";
    int n_extra = 0;
    for (int i = 0; i < st.n_tensors; i++)
      if (!used[i] && strcmp(st.tensors[i].name, LOSS_HISTORY)) append(extra, sizeof extra, &n_extra, st.tensors[i].name);
    if (n_extra)
      rc = errorf(err, errlen, "%s: %d unexpected tensor(s): %s%s (is this a checkpoint of this architecture?)", path,
                  n_extra, extra, n_extra > 8 ? ", ..." : "");
  }
  free(used);
  free(host);
  st_free(&st);
  return rc;
}
