/* test_checkpoint.c - checkpoint round trips (bytes, weights, outputs, training state), legacy
 * attention names, and clear errors for other architectures, missing/unexpected tensors and
 * truncated files. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/functions.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "synthetic.h"
#include "test_util.h"

static UNetConfig small_config(int ch) {
  UNetConfig c;
  unet_config_default(&c);
  c.resolution = 8;
  c.ch = ch;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.n_ch_mult = 2;
  c.num_res_blocks = 1;
  c.attn_resolutions[0] = 4, c.n_attn_resolutions = 1;
  c.groups = 8;
  c.dropout = 0.0;
  return c;
}

static Tensor *run(UNet *m, Graph *g) {
  graph_reset(g);
  g->grad_enabled = false;
  const int xs[4] = {2, 3, 8, 8}, B = 2;
  Tensor *x = graph_tensor(g, 4, xs), *t = graph_tensor(g, 1, &B);
  synthetic_fill(cpu_floats(x->data), x->numel, "input.x");
  cpu_floats(t->data)[0] = 5, cpu_floats(t->data)[1] = 900;
  return unet_forward(m, g, x, t, NULL);
}

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*n);
  if (fread(b, 1, *n, f) != *n) *n = 0;
  fclose(f);
  return b;
}

/* Write the model's weights under names transformed by `rename` (NULL = drop the tensor). */
static void save_renamed(const UNet *m, const char *path, const char *(*rename)(const char *, char *), const char *extra) {
  StWriter w;
  st_writer_init(&w);
  const ParamTable *p = &m->params;
  char(*names)[PARAM_NAME_MAX + 16] = calloc((size_t)p->count, sizeof *names);
  for (int i = 0; i < p->count; i++) {
    const char *n = rename(p->info[i].name, names[i]);
    if (!n) continue;
    int64_t s[4];
    for (int d = 0; d < p->info[i].ndim; d++) s[d] = p->info[i].shape[d];
    st_writer_add_f32(&w, n, p->info[i].ndim, s, cpu_floats(p->data) + p->info[i].offset);
  }
  const int64_t one = 1;
  if (extra) st_writer_add_f32(&w, extra, 1, &one, cpu_floats(p->data));
  char err[256];
  EXPECT(st_writer_save(&w, path, err, sizeof err) == 0, "%s", err);
  st_writer_free(&w);
  free(names);
}

static const char *legacy_names(const char *n, char *buf) {
  static const char *const from[] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
  static const char *const to[] = {".query.", ".key.", ".value.", ".proj_attn."};
  for (int a = 0; a < 4; a++) {
    const char *at = strstr(n, from[a]);
    if (at) {
      sprintf(buf, "%.*s%s%s", (int)(at - n), n, to[a], at + strlen(from[a]));
      return buf;
    }
  }
  return n;
}
static const char *drop_conv_out_bias(const char *n, char *buf) { return strcmp(n, "conv_out.bias") ? n : NULL; }
static const char *same_name(const char *n, char *buf) { return n; }

int main(void) {
  char path[] = "/tmp/diffuse_ckpt_XXXXXX";
  close(mkstemp(path));
  char err[1024];
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 20);
  const UNetConfig cfg = small_config(16);

  /* ---- inference checkpoint: save -> load -> identical weights, outputs and bytes ---- */
  UNet a, b;
  unet_init(&a, &cfg, backend_cpu());
  synthetic_params(&a.params);
  cJSON *root = cJSON_CreateObject();
  cfg_write_section(root, "model", UNET_CONFIG_FIELDS, UNET_CONFIG_N_FIELDS, &cfg);
  EXPECT(checkpoint_save(path, &a, root, NULL, err, sizeof err) == 0, "%s", err);
  cJSON *back = checkpoint_read_config(path, err, sizeof err);
  EXPECT(back && cJSON_Compare(back, root, 1), "embedded config differs");
  cJSON_Delete(back);
  unet_init(&b, &cfg, backend_cpu());
  const CheckpointLoadOptions infer = {.use_ema = true};
  EXPECT(checkpoint_load(path, &b, &infer, NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(memcmp(a.params.data, b.params.data, a.params.total * sizeof(float)) == 0, "weights differ after reload");
  Tensor *ya = run(&a, &g);
  float *ya_copy = malloc(ya->numel * sizeof(float));
  memcpy(ya_copy, ya->data, ya->numel * sizeof(float));
  Tensor *yb = run(&b, &g);
  EXPECT(memcmp(ya_copy, yb->data, yb->numel * sizeof(float)) == 0, "outputs differ after reload");
  size_t n1, n2;
  uint8_t *img1 = slurp(path, &n1);
  EXPECT(checkpoint_save(path, &b, root, NULL, err, sizeof err) == 0, "%s", err);
  uint8_t *img2 = slurp(path, &n2);
  EXPECT(n1 == n2 && memcmp(img1, img2, n1) == 0, "re-saved checkpoint is not byte-identical");
  free(img2);

  /* ---- truncated file: clear error naming the file, never a crash ---- */
  for (size_t cut = 0; cut < n1; cut += n1 / 37 + 1) {
    FILE *f = fopen(path, "wb");
    fwrite(img1, 1, cut, f);
    fclose(f);
    err[0] = 0;
    EXPECT(checkpoint_load(path, &b, &infer, NULL, err, sizeof err) != 0 && strstr(err, path), "truncated at %zu: '%s'", cut, err);
  }
  free(img1);

  /* ---- training checkpoint: online weights, EMA, moments, step and seed ---- */
  params_alloc_optimizer(&a.params);
  params_alloc_ema(&a.params);
  for (int k = 0; k < a.params.count; k++) /* parameters only: alignment padding stays zero */
    for (size_t i = a.params.info[k].offset; i < a.params.info[k].offset + a.params.info[k].numel; i++) {
      cpu_floats(a.params.ema)[i] = cpu_floats(a.params.data)[i] * 0.5f;
      cpu_floats(a.params.adam_m)[i] = (float)i * 1e-3f;
      cpu_floats(a.params.adam_v)[i] = (float)i * 2e-3f;
    }
  const TrainProgress prog = {.step = 1234, .seed = 99};
  EXPECT(checkpoint_save(path, &a, root, &prog, err, sizeof err) == 0, "%s", err);
  UNet c;
  unet_init(&c, &cfg, backend_cpu());
  params_alloc_optimizer(&c.params);
  params_alloc_ema(&c.params);
  const CheckpointLoadOptions resume = {.for_training = true};
  TrainProgress got = {0};
  EXPECT(checkpoint_load(path, &c, &resume, &got, err, sizeof err) == 0, "%s", err);
  const size_t bytes = a.params.total * sizeof(float);
  EXPECT(!memcmp(a.params.data, c.params.data, bytes) && !memcmp(a.params.ema, c.params.ema, bytes) &&
             !memcmp(a.params.adam_m, c.params.adam_m, bytes) && !memcmp(a.params.adam_v, c.params.adam_v, bytes),
         "training state differs after reload");
  EXPECT(got.step == 1234 && got.seed == 99, "progress %ld %llu", got.step, (unsigned long long)got.seed);
  /* inference loads the EMA by default and the online weights with use_ema = false */
  EXPECT(checkpoint_load(path, &b, &infer, NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(!memcmp(b.params.data, a.params.ema, bytes), "inference load did not take the EMA weights");
  const CheckpointLoadOptions no_ema = {.use_ema = false};
  EXPECT(checkpoint_load(path, &b, &no_ema, NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(!memcmp(b.params.data, a.params.data, bytes), "--no-ema load did not take the online weights");
  /* an inference checkpoint cannot be resumed from */
  EXPECT(checkpoint_save(path, &b, root, NULL, err, sizeof err) == 0, "%s", err);
  EXPECT(checkpoint_load(path, &c, &resume, NULL, err, sizeof err) != 0 && strstr(err, "not a training checkpoint"),
         "resume from inference checkpoint: '%s'", err);

  /* ---- legacy diffusers attention names load into the same weights ---- */
  save_renamed(&b, path, legacy_names, NULL);
  UNet d;
  unet_init(&d, &cfg, backend_cpu());
  EXPECT(checkpoint_load(path, &d, &infer, NULL, err, sizeof err) == 0, "legacy names: %s", err);
  EXPECT(!memcmp(d.params.data, b.params.data, bytes), "legacy-named weights differ");
  EXPECT(checkpoint_read_config(path, err, sizeof err) == NULL && err[0] == 0, "file without metadata has a config?");

  /* ---- missing and unexpected tensors are listed by name ---- */
  save_renamed(&b, path, drop_conv_out_bias, NULL);
  EXPECT(checkpoint_load(path, &d, &infer, NULL, err, sizeof err) != 0 && strstr(err, "missing: conv_out.bias"),
         "missing tensor error: '%s'", err);
  save_renamed(&b, path, same_name, "decoder.extra.weight");
  EXPECT(checkpoint_load(path, &d, &infer, NULL, err, sizeof err) != 0 && strstr(err, "unexpected tensor(s): decoder.extra.weight"),
         "unexpected tensor error: '%s'", err);

  /* ---- another architecture: shape mismatch named ---- */
  EXPECT(checkpoint_save(path, &b, root, NULL, err, sizeof err) == 0, "%s", err);
  UNet wide;
  const UNetConfig cfg_wide = small_config(32);
  unet_init(&wide, &cfg_wide, backend_cpu());
  EXPECT(checkpoint_load(path, &wide, &infer, NULL, err, sizeof err) != 0 && strstr(err, "another architecture"),
         "architecture mismatch error: '%s'", err);

  unlink(path);
  free(ya_copy);
  cJSON_Delete(root);
  unet_free(&a), unet_free(&b), unet_free(&c), unet_free(&d), unet_free(&wide);
  graph_free(&g);
  return test_report("checkpoint");
}
