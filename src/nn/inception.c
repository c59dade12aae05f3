/* inception.c - the FID Inception-v3 (pytorch-fid's port of TF "inception-2015-12-05"), forward only.
 *
 * Layout (torchvision Inception3, Szegedy et al. 2016, "Rethinking the Inception Architecture"), with
 * the FID blocks of pytorch-fid (pytorch_fid/inception.py):
 *   Conv2d_1a_3x3 (stride 2), Conv2d_2a_3x3, Conv2d_2b_3x3 (pad 1), max pool 3/2, Conv2d_3b_1x1,
 *   Conv2d_4a_3x3, max pool 3/2,
 *   Mixed_5b/5c/5d  FIDInceptionA   (35x35; avg pool 3/1/1 without counting the padding)
 *   Mixed_6a        InceptionB      (-> 17x17)
 *   Mixed_6b..6e    FIDInceptionC   (1x7 / 7x1 factorised convolutions)
 *   Mixed_7a        InceptionD      (-> 8x8)
 *   Mixed_7b        FIDInceptionE_1 (avg pool without the padding)
 *   Mixed_7c        FIDInceptionE_2 (max pool 3/1/1 in the pool branch, as the TF graph)
 *   global average pool -> pool3 (2048); fc -> logits (1008).
 * Convolutions are registered and consumed in state-dict order (the order of torchvision's
 * __init__), so inception_init and the forward walk the same list with one cursor.
 *
 * The forward runs one image at a time through the autograd ops with grad mode off (conv2d is
 * im2col + GEMM per image anyway), resetting the scratch graph between images so memory stays at
 * one image's activations. ReLU is applied in place on each fresh convolution output.
 */
#include "nn/inception.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "io/safetensors.h"

#define FID_WEIGHTS_PTH "pt_inception-2015-12-05-6726825d.pth"
#define FID_WEIGHTS_URL "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" FID_WEIGHTS_PTH

/* ---- parameter registration ---- */

typedef struct {
  Inception *m;
  int n; /* convolutions registered so far */
} Builder;

/* "<prefix>.<layer>.<module>.<leaf>" (prefix may be empty) */
static int add_param(Inception *m, const char *prefix, const char *layer, const char *module, const char *leaf,
                     int ndim, const int *shape) {
  char name[PARAM_NAME_MAX];
  const int n = snprintf(name, sizeof name, "%s%s%s%s%s.%s", prefix, *prefix ? "." : "", layer, *module ? "." : "",
                         module, leaf);
  CHECK(n > 0 && n < (int)sizeof name);
  return params_add(&m->params, name, ndim, shape);
}

/* BasicConv2d "<prefix>.<layer>": conv (cout, cin, kh, kw), no bias; BatchNorm (cout). */
static void conv(Builder *b, const char *prefix, const char *layer, int cin, int cout, int kh, int kw, int stride,
                 int pad_h, int pad_w) {
  CHECK(b->n < INCEPTION_N_CONV);
  InceptionConv *c = &b->m->conv[b->n++];
  *c = (InceptionConv){cin, cout, kh, kw, stride, pad_h, pad_w, -1, -1, -1, -1, -1};
  c->conv_w = add_param(b->m, prefix, layer, "conv", "weight", 4, (const int[]){cout, cin, kh, kw});
  c->bn_w = add_param(b->m, prefix, layer, "bn", "weight", 1, &cout);
  c->bn_b = add_param(b->m, prefix, layer, "bn", "bias", 1, &cout);
  c->bn_mean = add_param(b->m, prefix, layer, "bn", "running_mean", 1, &cout);
  c->bn_var = add_param(b->m, prefix, layer, "bn", "running_var", 1, &cout);
}

static void reg_a(Builder *b, const char *p, int cin, int pool_features) { /* -> 224 + pool_features */
  conv(b, p, "branch1x1", cin, 64, 1, 1, 1, 0, 0);
  conv(b, p, "branch5x5_1", cin, 48, 1, 1, 1, 0, 0);
  conv(b, p, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
  conv(b, p, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
  conv(b, p, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
  conv(b, p, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
  conv(b, p, "branch_pool", cin, pool_features, 1, 1, 1, 0, 0);
}

static void reg_b(Builder *b, const char *p, int cin) { /* -> 384 + 96 + cin */
  conv(b, p, "branch3x3", cin, 384, 3, 3, 2, 0, 0);
  conv(b, p, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
  conv(b, p, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
  conv(b, p, "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
}

static void reg_c(Builder *b, const char *p, int cin, int c7) { /* -> 768 */
  conv(b, p, "branch1x1", cin, 192, 1, 1, 1, 0, 0);
  conv(b, p, "branch7x7_1", cin, c7, 1, 1, 1, 0, 0);
  conv(b, p, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
  conv(b, p, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
  conv(b, p, "branch7x7dbl_1", cin, c7, 1, 1, 1, 0, 0);
  conv(b, p, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
  conv(b, p, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
  conv(b, p, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
  conv(b, p, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
  conv(b, p, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

static void reg_d(Builder *b, const char *p, int cin) { /* -> 320 + 192 + cin */
  conv(b, p, "branch3x3_1", cin, 192, 1, 1, 1, 0, 0);
  conv(b, p, "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
  conv(b, p, "branch7x7x3_1", cin, 192, 1, 1, 1, 0, 0);
  conv(b, p, "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
  conv(b, p, "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
  conv(b, p, "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
}

static void reg_e(Builder *b, const char *p, int cin) { /* -> 2048 */
  conv(b, p, "branch1x1", cin, 320, 1, 1, 1, 0, 0);
  conv(b, p, "branch3x3_1", cin, 384, 1, 1, 1, 0, 0);
  conv(b, p, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
  conv(b, p, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
  conv(b, p, "branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0);
  conv(b, p, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
  conv(b, p, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
  conv(b, p, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
  conv(b, p, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

void inception_init(Inception *m, const Backend *backend) {
  memset(m, 0, sizeof *m);
  params_init(&m->params);
  Builder b = {m, 0};
  conv(&b, "", "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0);
  conv(&b, "", "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0);
  conv(&b, "", "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1);
  conv(&b, "", "Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0);
  conv(&b, "", "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0);
  reg_a(&b, "Mixed_5b", 192, 32);
  reg_a(&b, "Mixed_5c", 256, 64);
  reg_a(&b, "Mixed_5d", 288, 64);
  reg_b(&b, "Mixed_6a", 288);
  reg_c(&b, "Mixed_6b", 768, 128);
  reg_c(&b, "Mixed_6c", 768, 160);
  reg_c(&b, "Mixed_6d", 768, 160);
  reg_c(&b, "Mixed_6e", 768, 192);
  reg_d(&b, "Mixed_7a", 768);
  reg_e(&b, "Mixed_7b", 1280);
  reg_e(&b, "Mixed_7c", 2048);
  CHECK(b.n == INCEPTION_N_CONV);
  m->fc_w = add_param(m, "", "fc", "", "weight", 2, (const int[]){INCEPTION_NUM_CLASSES, INCEPTION_POOL3_DIM});
  m->fc_b = add_param(m, "", "fc", "", "bias", 1, (const int[]){INCEPTION_NUM_CLASSES});
  params_finalize(&m->params, backend, false); /* inference only: no gradient buffer, every parameter constant */
}

void inception_free(Inception *m) {
  params_free(&m->params);
  free(m->staging);
  memset(m, 0, sizeof *m);
}

/* ---- BatchNorm folding (on the host: the weights are read, folded and written back once) ---- */

static size_t largest_param(const Inception *m) {
  size_t n = 1;
  for (int i = 0; i < m->params.count; i++)
    if (m->params.info[i].numel > n) n = m->params.info[i].numel;
  return n;
}

static int check_finite(const Inception *m, int idx, float *v, char *err, size_t errlen) {
  params_read(&m->params, m->params.data, idx, v);
  for (size_t i = 0; i < m->params.info[idx].numel; i++)
    if (!isfinite(v[i]))
      return errorf(err, errlen, "tensor '%s': element %zu is %g (not finite)", m->params.info[idx].name, i, v[i]);
  return 0;
}

/* w' = w s, b' = beta - mean s with s = gamma / sqrt(var + eps) (variances already checked). */
static void fold_conv(Inception *m, const InceptionConv *c, float *w, float *bn) {
  ParamTable *p = &m->params;
  float *gamma = bn, *beta = bn + c->cout, *mean = bn + 2 * c->cout, *var = bn + 3 * c->cout;
  params_read(p, p->data, c->bn_var, var);
  params_read(p, p->data, c->conv_w, w);
  params_read(p, p->data, c->bn_w, gamma);
  params_read(p, p->data, c->bn_b, beta);
  params_read(p, p->data, c->bn_mean, mean);
  const size_t per_out = (size_t)c->cin * c->kh * c->kw;
  for (int o = 0; o < c->cout; o++) {
    const double s = (double)gamma[o] / sqrt((double)var[o] + INCEPTION_BN_EPS);
    for (size_t k = 0; k < per_out; k++) w[o * per_out + k] = (float)(w[o * per_out + k] * s);
    beta[o] = (float)(beta[o] - mean[o] * s);
  }
  params_write(p, p->data, c->conv_w, w);
  params_write(p, p->data, c->bn_b, beta);
}

int inception_fold(Inception *m, char *err, size_t errlen) {
  CHECK(m->params.data && !m->folded);
  float *w = xmalloc(largest_param(m) * sizeof(float)), *bn = xmalloc(4 * 2048 * sizeof(float));
  int rc = 0;
  for (int i = 0; i < m->params.count && rc == 0; i++) rc = check_finite(m, i, w, err, errlen);
  for (int l = 0; l < INCEPTION_N_CONV && rc == 0; l++) { /* every variance is checked before anything changes */
    const InceptionConv *c = &m->conv[l];
    CHECK(c->cout <= 2048);
    params_read(&m->params, m->params.data, c->bn_var, bn);
    for (int o = 0; o < c->cout && rc == 0; o++)
      if (bn[o] < 0.0f)
        rc = errorf(err, errlen, "tensor '%s': element %d is %g (a variance must be >= 0)",
                    m->params.info[c->bn_var].name, o, bn[o]);
  }
  for (int l = 0; l < INCEPTION_N_CONV && rc == 0; l++) fold_conv(m, &m->conv[l], w, bn);
  free(w), free(bn);
  if (rc == 0) m->folded = true;
  return rc;
}

/* ---- loading ---- */

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < ndim && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
}

static int load_tensors(Inception *m, const SafeTensors *st, const char *path, char *err, size_t errlen) {
  for (int i = 0; i < st->n_tensors; i++) { /* first, so another network's file is named as such */
    const char *name = st->tensors[i].name;
    if (!ends_with(name, ".num_batches_tracked") && params_find(&m->params, name) < 0)
      return errorf(err, errlen, "%s: unexpected tensor '%s': not part of the FID Inception-v3 (wrong file?)", path,
                    name);
  }
  float *host = xmalloc(largest_param(m) * sizeof(float));
  int rc = 0;
  for (int i = 0; i < m->params.count && rc == 0; i++) {
    const ParamInfo *pi = &m->params.info[i];
    int64_t want[TENSOR_MAX_DIMS];
    for (int d = 0; d < pi->ndim; d++) want[d] = pi->shape[d];
    char want_s[64], got_s[128];
    format_shape(want_s, sizeof want_s, pi->ndim, want);
    const StTensor *t = st_find(st, pi->name);
    if (!t) {
      rc = errorf(err, errlen,
                  "%s: missing tensor '%s' (shape [%s]); expected pytorch-fid's FID Inception weights converted "
                  "by scripts/convert_inception.py",
                  path, pi->name, want_s);
      break;
    }
    bool same = t->ndim == pi->ndim;
    for (int d = 0; same && d < pi->ndim; d++) same = t->shape[d] == want[d];
    char inner[256];
    if (!same) {
      format_shape(got_s, sizeof got_s, t->ndim, t->shape);
      rc = errorf(err, errlen, "%s: tensor '%s' has shape [%s], the FID Inception expects [%s]", path, pi->name,
                  got_s, want_s);
    } else if (st_tensor_to_f32(t, host, inner, sizeof inner) != 0) {
      rc = errorf(err, errlen, "%s: tensor '%s': %s", path, pi->name, inner);
    } else {
      params_write(&m->params, m->params.data, i, host);
    }
  }
  free(host);
  return rc;
}

int inception_load(Inception *m, const Backend *backend, const char *path, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  struct stat sb;
  if (stat(path, &sb) != 0)
    return errorf(err, errlen,
                  "Inception weights %s: %s. Download pytorch-fid's " FID_WEIGHTS_PTH " (" FID_WEIGHTS_URL
                  ") and convert it: /usr/bin/python3 scripts/convert_inception.py " FID_WEIGHTS_PTH " %s",
                  path, strerror(errno), path);
  SafeTensors st;
  char inner[512];
  if (st_load(&st, path, inner, sizeof inner) != 0)
    return errorf(err, errlen,
                  "Inception weights: %s (convert pytorch-fid's " FID_WEIGHTS_PTH
                  " with scripts/convert_inception.py)",
                  inner);
  inception_init(m, backend);
  int rc = load_tensors(m, &st, path, err, errlen);
  st_free(&st);
  if (rc == 0 && inception_fold(m, inner, sizeof inner) != 0) rc = errorf(err, errlen, "%s: %s", path, inner);
  if (rc != 0) inception_free(m);
  return rc;
}

void inception_read_fc(const Inception *m, float *weight, float *bias) {
  params_read(&m->params, m->params.data, m->fc_w, weight);
  if (bias) params_read(&m->params, m->params.data, m->fc_b, bias);
}

/* ---- forward ---- */

/* conv + folded BatchNorm + ReLU; consumes the next convolution of the list. */
static Tensor *basic(Inception *m, Graph *g, Tensor *x, int *cursor) {
  CHECK(*cursor < INCEPTION_N_CONV);
  const InceptionConv *c = &m->conv[(*cursor)++];
  CHECK(x->shape[1] == c->cin);
  Tensor *y = ag_conv2d(g, x, params_tensor(&m->params, c->conv_w), params_tensor(&m->params, c->bn_b), c->stride,
                        c->stride, c->pad_h, c->pad_h, c->pad_w, c->pad_w);
  g->backend->ops->relu_forward(g->backend, y->data, y->data, y->numel); /* in place: y is fresh, grad mode off */
  return y;
}

/* (B, C_i, H, W) parts -> (B, sum C_i, H, W), in order. */
static Tensor *concat(Graph *g, Tensor *const *parts, int n) {
  const int B = parts[0]->shape[0], H = parts[0]->shape[2], W = parts[0]->shape[3];
  int C = 0;
  for (int i = 0; i < n; i++) {
    CHECK(parts[i]->ndim == 4 && parts[i]->shape[0] == B && parts[i]->shape[2] == H && parts[i]->shape[3] == W);
    C += parts[i]->shape[1];
  }
  Tensor *y = graph_tensor(g, 4, (const int[]){B, C, H, W});
  const size_t HW = (size_t)H * W;
  size_t at = 0; /* floats of y written */
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) {
      const size_t len = (size_t)parts[i]->shape[1] * HW;
      g->backend->ops->copy(g->backend, mem_floats_at(y->data, at), mem_floats_at(parts[i]->data, b * len),
                            len * sizeof(float));
      at += len;
    }
  return y;
}

/* FIDInceptionA */
static Tensor *block_a(Inception *m, Graph *g, Tensor *x, int *k) {
  Tensor *b1 = basic(m, g, x, k);
  Tensor *b5 = basic(m, g, basic(m, g, x, k), k);
  Tensor *b3 = basic(m, g, basic(m, g, basic(m, g, x, k), k), k);
  Tensor *bp = basic(m, g, ag_avg_pool2d(g, x, 3, 1, 1, false), k);
  return concat(g, (Tensor *const[]){b1, b5, b3, bp}, 4);
}

/* InceptionB */
static Tensor *block_b(Inception *m, Graph *g, Tensor *x, int *k) {
  Tensor *b3 = basic(m, g, x, k);
  Tensor *bd = basic(m, g, basic(m, g, basic(m, g, x, k), k), k);
  Tensor *bp = ag_max_pool2d(g, x, 3, 2, 0);
  return concat(g, (Tensor *const[]){b3, bd, bp}, 3);
}

/* FIDInceptionC; *branch1x1 (unless NULL) receives the 1x1 branch's output. */
static Tensor *block_c(Inception *m, Graph *g, Tensor *x, int *k, Tensor **branch1x1) {
  Tensor *b1 = basic(m, g, x, k);
  if (branch1x1) *branch1x1 = b1;
  Tensor *b7 = basic(m, g, basic(m, g, basic(m, g, x, k), k), k);
  Tensor *bd = x;
  for (int i = 0; i < 5; i++) bd = basic(m, g, bd, k);
  Tensor *bp = basic(m, g, ag_avg_pool2d(g, x, 3, 1, 1, false), k);
  return concat(g, (Tensor *const[]){b1, b7, bd, bp}, 4);
}

/* InceptionD */
static Tensor *block_d(Inception *m, Graph *g, Tensor *x, int *k) {
  Tensor *b3 = basic(m, g, basic(m, g, x, k), k);
  Tensor *b7 = x;
  for (int i = 0; i < 4; i++) b7 = basic(m, g, b7, k);
  Tensor *bp = ag_max_pool2d(g, x, 3, 2, 0);
  return concat(g, (Tensor *const[]){b3, b7, bp}, 3);
}

/* FIDInceptionE_1 (max_pool false: average pool without the padding) or FIDInceptionE_2 (max pool). */
static Tensor *block_e(Inception *m, Graph *g, Tensor *x, int *k, bool max_pool) {
  Tensor *b1 = basic(m, g, x, k);
  Tensor *t = basic(m, g, x, k);
  Tensor *b3a = basic(m, g, t, k), *b3b = basic(m, g, t, k);
  Tensor *d = basic(m, g, basic(m, g, x, k), k);
  Tensor *bda = basic(m, g, d, k), *bdb = basic(m, g, d, k);
  Tensor *pooled = max_pool ? ag_max_pool2d(g, x, 3, 1, 1) : ag_avg_pool2d(g, x, 3, 1, 1, false);
  Tensor *bp = basic(m, g, pooled, k);
  return concat(g, (Tensor *const[]){b1, b3a, b3b, bda, bdb, bp}, 6);
}

/* The first INCEPTION_SPATIAL_CHANNELS channels of Mixed_6d's 1x1 branch (B, 192, 17, 17), to the
 * host as (B, 17, 17, 7): TensorFlow's NHWC order, so statistics match guided-diffusion's. */
static void download_spatial(Graph *g, const Tensor *b1, float *spatial) {
  const int B = b1->shape[0], C = b1->shape[1], HW = b1->shape[2] * b1->shape[3];
  CHECK(C >= INCEPTION_SPATIAL_CHANNELS && HW * INCEPTION_SPATIAL_CHANNELS == INCEPTION_SPATIAL_DIM);
  float chw[INCEPTION_SPATIAL_DIM];
  for (int b = 0; b < B; b++) {
    backend_download(g->backend, chw, mem_floats_at(b1->data, (size_t)b * C * HW), sizeof chw);
    float *out = spatial + (size_t)b * INCEPTION_SPATIAL_DIM;
    for (int c = 0; c < INCEPTION_SPATIAL_CHANNELS; c++)
      for (int i = 0; i < HW; i++) out[i * INCEPTION_SPATIAL_CHANNELS + c] = chw[c * HW + i];
  }
}

/* x (B, 3, 299, 299) in [-1, 1] -> (B, 2048, 1, 1), and the sFID features into spatial (host,
 * (B, INCEPTION_SPATIAL_DIM)) unless NULL. Grad mode is off: the stem's activations stay until its
 * end, then after each block only its output is kept (moved down to `base`, below which x's source
 * lies), so the arena holds the stem's or one block's activations of the chunk, not the whole pass's. */
static Tensor *features(Inception *m, Graph *g, Tensor *x, GraphMark base, float *spatial) {
  int k = 0;
#define KEEP(expr) (x = graph_keep_only(g, base, (expr)))
  x = basic(m, g, x, &k);                                 /* Conv2d_1a_3x3 -> 32 x 149 x 149 */
  x = basic(m, g, x, &k);                                 /* Conv2d_2a_3x3 -> 32 x 147 x 147 */
  x = basic(m, g, x, &k);                                 /* Conv2d_2b_3x3 -> 64 x 147 x 147 */
  x = ag_max_pool2d(g, x, 3, 2, 0);                       /* -> 64 x 73 x 73 */
  x = basic(m, g, x, &k);                                 /* Conv2d_3b_1x1 -> 80 x 73 x 73 */
  x = basic(m, g, x, &k);                                 /* Conv2d_4a_3x3 -> 192 x 71 x 71 */
  KEEP(ag_max_pool2d(g, x, 3, 2, 0));                     /* -> 192 x 35 x 35 */
  for (int i = 0; i < 3; i++) KEEP(block_a(m, g, x, &k)); /* Mixed_5b..5d -> 288 x 35 x 35 */
  KEEP(block_b(m, g, x, &k));                             /* Mixed_6a -> 768 x 17 x 17 */
  for (int i = 0; i < 4; i++) { /* Mixed_6b..6e; Mixed_6d's 1x1 branch is TF's "mixed_6/conv" */
    Tensor *b1 = NULL;
    x = block_c(m, g, x, &k, i == 2 ? &b1 : NULL);
    if (b1 && spatial) download_spatial(g, b1, spatial);
    KEEP(x);
  }
  KEEP(block_d(m, g, x, &k));                             /* Mixed_7a -> 1280 x 8 x 8 */
  KEEP(block_e(m, g, x, &k, false));                      /* Mixed_7b -> 2048 x 8 x 8 */
  KEEP(block_e(m, g, x, &k, true));                       /* Mixed_7c */
#undef KEEP
  CHECK(k == INCEPTION_N_CONV && x->shape[1] == INCEPTION_POOL3_DIM);
  return ag_global_avg_pool(g, x);
}

void inception_forward(Inception *m, Graph *g, const uint8_t *images, int B, int H, int W, float *pool3,
                       float *logits, float *spatial) {
  CHECK(m->folded && "inception_forward before inception_load / inception_fold");
  CHECK(images && pool3 && B >= 1 && H >= 1 && W >= 1);
  CHECK(g->backend == m->params.backend);
  const bool grad_enabled = g->grad_enabled;
  g->grad_enabled = false;
  const size_t per_image = (size_t)3 * H * W;
  const int n_chunks = (B + INCEPTION_CHUNK - 1) / INCEPTION_CHUNK, chunk = (B + n_chunks - 1) / n_chunks; /* even */
  if ((size_t)chunk * per_image > m->staging_floats) {
    free(m->staging);
    m->staging_floats = (size_t)chunk * per_image;
    m->staging = xmalloc(m->staging_floats * sizeof(float));
  }
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int n = B - b0 < chunk ? B - b0 : chunk;
    graph_reset(g);
    const GraphMark base = graph_mark(g);
    const uint8_t *img = images + (size_t)b0 * per_image;
    for (size_t i = 0; i < (size_t)n * per_image; i++) m->staging[i] = (float)img[i] / 255.0f; /* ToTensor */
    Tensor *x = graph_tensor_upload(g, 4, (const int[]){n, 3, H, W}, m->staging);
    if (H != INCEPTION_SIZE || W != INCEPTION_SIZE) x = ag_bilinear_resize(g, x, INCEPTION_SIZE, INCEPTION_SIZE);
    g->backend->ops->scale_shift(g->backend, x->data, x->data, 2.0f, -1.0f, x->numel); /* in place, x is fresh */
    float *chunk_spatial = spatial ? spatial + (size_t)b0 * INCEPTION_SPATIAL_DIM : NULL;
    tensor_download(features(m, g, x, base, chunk_spatial), pool3 + (size_t)b0 * INCEPTION_POOL3_DIM);
  }
  if (logits) {
    graph_reset(g);
    Tensor *f = graph_tensor_upload(g, 2, (const int[]){B, INCEPTION_POOL3_DIM}, pool3);
    Tensor *fc_w = params_tensor(&m->params, m->fc_w), *fc_b = params_tensor(&m->params, m->fc_b);
    tensor_download(ag_linear(g, f, fc_w, fc_b), logits);
  }
  graph_reset(g);
  g->grad_enabled = grad_enabled;
}
