/* test_inception.c - the FID Inception-v3 (src/nn/inception.c) against PyTorch
 * (scripts/gen_inception_fixtures.py: pytorch-fid's blocks on torchvision's Inception3, synthetic
 * weights from tests/synthetic.c, reference computed in float64):
 *  - the parameter table is exactly the pytorch-fid state dict (keys, order, shapes, count);
 *  - pool3 and logits of three 32x32 images (resized to 299) and pool3 of a 24x40 image, relative
 *    tolerance 1e-4 (94 conv layers of float32 GEMMs vs a float64 reference);
 *  - loading: a safetensors round trip gives the same folded weights (num_batches_tracked ignored);
 *    a missing file says how to get the weights; missing, wrong-shaped and unexpected tensors, a
 *    non-safetensors file and a negative running variance are errors naming the file and tensor.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "nn/inception.h"
#include "synthetic.h"
#include "test_util.h"

#define INCEPTION_TOL 1e-4 /* float32 through 94 conv layers vs a float64 reference */
#define PARAM_COUNT 23850960 /* PyTorch's count: parameters, not the BatchNorm running statistics */

static void synthetic_model(Inception *m) {
  inception_init(m, backend_cpu());
  synthetic_params(&m->params);
  char err[512];
  const int rc = inception_fold(m, err, sizeof err);
  EXPECT(rc == 0, "fold of synthetic weights failed: %s", err);
}

static void temp_path(char *buf, size_t len, const char *tag) {
  const char *dir = getenv("TMPDIR");
  snprintf(buf, len, "%s/test_inception_%ld_%s.safetensors", dir && *dir ? dir : "/tmp", (long)getpid(), tag);
}

static bool contains(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

/* ---- state dict ---- */

/* m: any model (folding changes values, not the table) */
static void check_state_dict(const SafeTensors *st, const Inception *m) {
  size_t cap = 1 << 16, used = 0, count = 0;
  char *listing = malloc(cap);
  listing[0] = '\0';
  for (int i = 0; i < m->params.count; i++) {
    const ParamInfo *pi = &m->params.info[i];
    used += (size_t)snprintf(listing + used, cap - used, "%s ", pi->name);
    for (int d = 0; d < pi->ndim; d++) used += (size_t)snprintf(listing + used, cap - used, "%s%d", d ? "," : "", pi->shape[d]);
    used += (size_t)snprintf(listing + used, cap - used, "\n");
    CHECK(used < cap);
    if (!strstr(pi->name, ".running_")) count += pi->numel;
  }
  const char *want = st_meta_get(st, "state_dict");
  EXPECT(want != NULL, "fixture lacks the state_dict listing");
  if (want && strcmp(listing, want) != 0) {
    size_t k = 0;
    while (listing[k] && listing[k] == want[k]) k++;
    while (k > 0 && listing[k - 1] != '\n') k--;
    EXPECT(false, "parameter table differs from pytorch-fid's state dict at line \"%.80s\" (fixture: \"%.80s\")",
           listing + k, want + k);
  }
  EXPECT(m->params.count == 5 * INCEPTION_N_CONV + 2, "%d tensors", m->params.count);
  EXPECT(count == PARAM_COUNT, "%zu parameters, PyTorch counts %d", count, PARAM_COUNT);
  const char *meta_count = st_meta_get(st, "param_count");
  EXPECT(meta_count && atol(meta_count) == PARAM_COUNT, "fixture param_count %s", meta_count ? meta_count : "(none)");
  free(listing);
}

/* ---- reference ---- */

/* A fixture tensor of byte values (stored as floats) -> malloc'd uint8 (B, 3, H, W). */
static uint8_t *fixture_images(const SafeTensors *st, const char *name, int *B, int *H, int *W) {
  const StTensor *t = st_find(st, name);
  if (!t || t->ndim != 4 || t->shape[1] != 3) {
    fprintf(stderr, "FAIL fixture %s: missing or not (B, 3, H, W)\n", name);
    exit(1);
  }
  *B = (int)t->shape[0], *H = (int)t->shape[2], *W = (int)t->shape[3];
  float *f = malloc(t->numel * sizeof(float));
  uint8_t *u = malloc(t->numel);
  char err[256];
  CHECK(st_tensor_to_f32(t, f, err, sizeof err) == 0);
  for (size_t i = 0; i < t->numel; i++) {
    CHECK(f[i] >= 0.0f && f[i] <= 255.0f && f[i] == floorf(f[i]));
    u[i] = (uint8_t)f[i];
  }
  free(f);
  return u;
}

static void compare(const SafeTensors *st, const char *name, const float *got, size_t n, const char *what) {
  const StTensor *t = st_find(st, name);
  EXPECT(t && t->numel == n, "fixture %s: missing or not %zu elements", name, n);
  if (!t || t->numel != n) return;
  float *want = malloc(n * sizeof(float));
  char err[256];
  CHECK(st_tensor_to_f32(t, want, err, sizeof err) == 0);
  double max_err = 0, max_want = 0;
  for (size_t i = 0; i < n; i++) {
    max_err = fmax(max_err, fabs((double)got[i] - want[i]));
    max_want = fmax(max_want, fabs(want[i]));
  }
  printf("inception: %-34s max |error| %.3g = %.2e of max |value| %.3g\n", what, max_err, max_err / max_want,
         max_want);
  expect_close(what, got, want, n, INCEPTION_TOL);
  free(want);
}

static void check_reference(Inception *m, const SafeTensors *st) {
  Graph g;
  graph_init(&g, backend_cpu(), 0);
  int B, H, W;
  uint8_t *images = fixture_images(st, "images", &B, &H, &W);
  float *pool3 = malloc((size_t)B * INCEPTION_POOL3_DIM * sizeof(float));
  float *logits = malloc((size_t)B * INCEPTION_NUM_CLASSES * sizeof(float));
  float *spatial = malloc((size_t)B * INCEPTION_SPATIAL_DIM * sizeof(float));
  inception_forward(m, &g, images, B, H, W, pool3, logits, spatial);
  compare(st, "pool3", pool3, (size_t)B * INCEPTION_POOL3_DIM, "pool3 (3 images, 32x32)");
  compare(st, "logits", logits, (size_t)B * INCEPTION_NUM_CLASSES, "logits (3 images, 32x32)");
  compare(st, "spatial", spatial, (size_t)B * INCEPTION_SPATIAL_DIM, "sFID spatial (3 images, 32x32)");
  free(spatial);
  free(images);

  int B2, H2, W2;
  images = fixture_images(st, "images_rect", &B2, &H2, &W2);
  CHECK(B2 <= B);
  inception_forward(m, &g, images, B2, H2, W2, pool3, NULL, NULL);
  compare(st, "pool3_rect", pool3, (size_t)B2 * INCEPTION_POOL3_DIM, "pool3 (1 image, 24x40)");
  free(images);
  free(pool3);
  free(logits);
  graph_free(&g);
}

/* ---- loading ---- */

/* Write the table's tensors, plus a num_batches_tracked entry, as a safetensors file. */
/* Bit-equal weights (downloaded). */
static bool same_weights(const Inception *a, const Inception *b) {
  const size_t bytes = a->params.total * sizeof(float);
  float *x = malloc(bytes), *y = malloc(bytes);
  backend_download(a->params.backend, x, a->params.data, bytes);
  backend_download(b->params.backend, y, b->params.data, bytes);
  const bool same = memcmp(x, y, bytes) == 0;
  free(x), free(y);
  return same;
}

static void write_one(const char *path, const char *name, int ndim, const int64_t *shape) {
  size_t n = 1;
  for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
  float *data = calloc(n, sizeof(float));
  StWriter w;
  st_writer_init(&w);
  st_writer_add_f32(&w, name, ndim, shape, data);
  char err[512];
  CHECK(st_writer_save(&w, path, err, sizeof err) == 0);
  st_writer_free(&w);
  free(data);
}

static void expect_load_error(const char *path, const char *what, const char *const *needles, int n_needles) {
  Inception m;
  char err[1024] = "";
  const int rc = inception_load(&m, backend_cpu(), path, err, sizeof err);
  EXPECT(rc == -1, "%s: inception_load returned %d", what, rc);
  for (int i = 0; i < n_needles; i++)
    EXPECT(contains(err, needles[i]), "%s: message lacks \"%s\": %s", what, needles[i], err);
  printf("inception: %s -> %s\n", what, err);
  inception_free(&m); /* released by the failed load; freeing again is safe */
}

static void check_load(const Inception *ref) {
  char path[512];
  /* a missing file tells how to get the weights */
  expect_load_error("/nonexistent-dir/inception.safetensors", "missing file",
                    (const char *const[]){"/nonexistent-dir/inception.safetensors", "pt_inception-2015-12-05-6726825d.pth",
                                          "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/",
                                          "scripts/convert_inception.py"},
                    4);

  /* a file that is not safetensors (e.g. the .pth itself) */
  temp_path(path, sizeof path, "garbage");
  FILE *f = fopen(path, "wb");
  CHECK(f);
  fputs("PK\x03\x04 this is a zip archive, as torch.save writes", f);
  fclose(f);
  expect_load_error(path, "not safetensors", (const char *const[]){path, "convert_inception.py"}, 2);
  remove(path);

  /* wrong shape: the first tensor the loader reads */
  temp_path(path, sizeof path, "shape");
  write_one(path, "Conv2d_1a_3x3.conv.weight", 4, (const int64_t[]){32, 3, 3, 2});
  expect_load_error(path, "wrong shape",
                    (const char *const[]){path, "'Conv2d_1a_3x3.conv.weight'", "[32, 3, 3, 2]", "[32, 3, 3, 3]"}, 4);
  remove(path);

  /* missing tensor */
  temp_path(path, sizeof path, "missing");
  write_one(path, "Conv2d_1a_3x3.conv.weight", 4, (const int64_t[]){32, 3, 3, 3});
  expect_load_error(path, "missing tensor", (const char *const[]){path, "missing", "'Conv2d_1a_3x3.bn.weight'"}, 3);
  remove(path);

  /* a tensor that does not belong to the network (checked before the others) */
  temp_path(path, sizeof path, "unexpected");
  write_one(path, "AuxLogits.fc.weight", 2, (const int64_t[]){1000, 768});
  expect_load_error(path, "unexpected tensor", (const char *const[]){path, "unexpected", "'AuxLogits.fc.weight'"}, 3);
  remove(path);

  /* round trip of the unfolded synthetic weights: the same folded model */
  Inception raw;
  inception_init(&raw, backend_cpu());
  synthetic_params(&raw.params);
  temp_path(path, sizeof path, "full");
  synthetic_inception_write(&raw, path);
  Inception m;
  char err[1024] = "";
  const int rc = inception_load(&m, backend_cpu(), path, err, sizeof err);
  EXPECT(rc == 0, "round trip: %s", err);
  if (rc == 0) {
    EXPECT(m.params.total == ref->params.total &&
               same_weights(&m, ref),
           "round trip: loaded and folded weights differ from the synthetic model's");
    static float w_got[INCEPTION_NUM_CLASSES * INCEPTION_POOL3_DIM], w_ref[INCEPTION_NUM_CLASSES * INCEPTION_POOL3_DIM];
    float b_got[INCEPTION_NUM_CLASSES], b_ref[INCEPTION_NUM_CLASSES];
    inception_read_fc(&m, w_got, b_got);
    inception_read_fc(ref, w_ref, b_ref);
    EXPECT(w_got[5] == w_ref[5] && b_got[7] == b_ref[7] && w_got[5] != 0.0f, "fc accessors");
  }
  inception_free(&m);

  remove(path);

  /* a negative running variance */
  const int var = raw.conv[17].bn_var;
  float *v = malloc(raw.params.info[var].numel * sizeof(float));
  params_read(&raw.params, raw.params.data, var, v);
  v[3] = -0.5f;
  params_write(&raw.params, raw.params.data, var, v);
  free(v);
  const int frc = inception_fold(&raw, err, sizeof err);
  EXPECT(frc == -1 && contains(err, raw.params.info[raw.conv[17].bn_var].name) && contains(err, "element 3"),
         "negative variance: rc %d, %s", frc, err);
  printf("inception: negative variance -> %s\n", err);
  inception_free(&raw);
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "inception.safetensors");
  Inception m;
  synthetic_model(&m);
  check_state_dict(&st, &m);
  check_reference(&m, &st);
  check_load(&m);
  inception_free(&m);
  st_free(&st);
  return test_report("inception");
}
