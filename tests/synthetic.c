/* synthetic.c - see synthetic.h. */
#include "synthetic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#include "io/safetensors.h"
#include "nn/init.h"

static uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void synthetic_fill(float *out, size_t n, const char *stream_name) {
  const uint64_t stream = hash_name(stream_name);
  for (size_t i = 0; i < n; i++) out[i] = (float)((double)(splitmix64(stream + i) >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

void synthetic_params(ParamTable *p) {
  for (int k = 0; k < p->count; k++) {
    const ParamInfo *pi = &p->info[k];
    float *w = xmalloc(pi->numel * sizeof(float));
    synthetic_fill(w, pi->numel, pi->name);
    const size_t len = strlen(pi->name);
    if (pi->ndim >= 2) {
      const double scale = 1.0 / sqrt((double)pi->numel / pi->shape[0]);
      for (size_t i = 0; i < pi->numel; i++) w[i] = (float)(w[i] * scale);
    } else if (len >= 12 && strcmp(pi->name + len - 12, ".running_var") == 0) {
      for (size_t i = 0; i < pi->numel; i++) w[i] = (float)((1.0 + 0.5 * fabs((double)w[i])) * 0.125);
    } else if (len >= 7 && strcmp(pi->name + len - 7, ".weight") == 0) {
      for (size_t i = 0; i < pi->numel; i++) w[i] = (float)(1.0 + 0.1 * w[i]);
    } else {
      for (size_t i = 0; i < pi->numel; i++) w[i] = (float)(0.1 * w[i]);
    }
    params_write(p, p->data, k, w);
    free(w);
  }
}

UNetConfig synthetic_small_unet_config(int num_classes) {
  UNetConfig c;
  unet_config_default(&c);
  c.resolution = 16;
  c.ch = 16;
  c.groups = 8; /* several channels per group, so biases feeding a GroupNorm keep a gradient */
  c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.n_ch_mult = 2;
  c.num_res_blocks = 1;
  c.attn_resolutions[0] = 8, c.n_attn_resolutions = 1;
  c.dropout = 0.0;
  c.num_classes = num_classes;
  return c;
}

void synthetic_denoiser_init(SyntheticDenoiser *s, int T, const char *prediction) {
  DiffusionConfig dc;
  diffusion_config_default(&dc);
  dc.T = T;
  strcpy(dc.beta_schedule, "cosine");
  snprintf(dc.prediction, sizeof dc.prediction, "%s", prediction);
  synthetic_denoiser_init_process(s, &dc);
}

void synthetic_denoiser_init_process(SyntheticDenoiser *s, const DiffusionConfig *dc) {
  char err[256];
  CHECK(diffusion_init(&s->d, dc, err, sizeof err) == 0);
  const UNetConfig c = synthetic_small_unet_config(0);
  unet_init(&s->model, &c, backend_cpu());
  synthetic_params(&s->model.params);
  graph_init(&s->g, backend_cpu(), 1 << 22);
  s->ctx = (UNetDenoiser){.diffusion = &s->d, .model = &s->model, .graph = &s->g};
  s->den = unet_denoiser(&s->ctx);
}

void synthetic_denoiser_free(SyntheticDenoiser *s) {
  graph_free(&s->g);
  unet_free(&s->model);
  diffusion_free(&s->d);
}

void synthetic_inception_write(const Inception *m, const char *path) {
  StWriter w;
  st_writer_init(&w);
  float *host = malloc(m->params.total * sizeof(float)); /* the weights, downloaded */
  backend_download(m->params.backend, host, m->params.data, m->params.total * sizeof(float));
  for (int i = 0; i < m->params.count; i++) {
    const ParamInfo *pi = &m->params.info[i];
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < pi->ndim; d++) shape[d] = pi->shape[d];
    st_writer_add_f32(&w, pi->name, pi->ndim, shape, host + pi->offset);
  }
  static const float one = 1.0f;
  const int64_t s1[1] = {1};
  st_writer_add_f32(&w, "Mixed_6b.branch1x1.bn.num_batches_tracked", 1, s1, &one); /* ignored by the loader */
  char err[512];
  const int rc = st_writer_save(&w, path, err, sizeof err);
  CHECK(rc == 0);
  free(host);
  st_writer_free(&w);
}
