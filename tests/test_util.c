/* test_util.c - assertion helpers and fixture loading shared by the C tests. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

int test_failures = 0;

int expect_close(const char *what, const float *got, const float *want, size_t n, double tol) {
  double scale = 0.0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
  size_t worst = 0;
  double worst_ratio = 0.0;
  int nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i])) nonfinite = 1;
    const double err = fabs((double)got[i] - want[i]);
    const double allowed = tol * (fabs(want[i]) + scale) + 1e-30;
    if (err / allowed > worst_ratio) worst_ratio = err / allowed, worst = i;
  }
  if (worst_ratio > 1.0 || nonfinite) {
    fprintf(stderr, "FAIL %s: element %zu of %zu: got %.9g want %.9g (%.2fx the tolerance %.1e)%s\n", what, worst,
            n, got[worst], want[worst], worst_ratio, tol, nonfinite ? " [non-finite values]" : "");
    test_failures++;
    return 0;
  }
  return 1;
}

void load_fixture(SafeTensors *st, const char *name) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/%s", DIFFUSE_FIXTURE_DIR, name);
  if (st_load(st, path, err, sizeof err) != 0) {
    fprintf(stderr, "FAIL cannot load fixture: %s\n", err);
    exit(1);
  }
}

Tensor *fixture_tensor(Graph *g, const SafeTensors *st, const char *name) {
  const StTensor *t = st_find(st, name);
  if (!t) return NULL;
  int shape[TENSOR_MAX_DIMS];
  if (t->ndim < 1 || t->ndim > TENSOR_MAX_DIMS) {
    fprintf(stderr, "FAIL fixture tensor %s has %d dims\n", name, t->ndim);
    exit(1);
  }
  for (int i = 0; i < t->ndim; i++) shape[i] = (int)t->shape[i];
  Tensor *x = graph_tensor(g, t->ndim, shape);
  float *host = malloc((x->numel ? x->numel : 1) * sizeof(float));
  char err[256];
  if (st_tensor_to_f32(t, host, err, sizeof err) != 0) {
    fprintf(stderr, "FAIL %s\n", err);
    exit(1);
  }
  tensor_upload(x, host);
  free(host);
  return x;
}

int test_report(const char *test_name) {
  if (test_failures) {
    fprintf(stderr, "%s: %d failure(s)\n", test_name, test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", test_name);
  return 0;
}

void init_diffusion(Diffusion *d, const char *type, const char *schedule) {
  DiffusionConfig c;
  diffusion_config_default(&c);
  diffusion_config_type_defaults(&c, type);
  snprintf(c.type, sizeof c.type, "%s", type);
  snprintf(c.beta_schedule, sizeof c.beta_schedule, "%s", schedule);
  char err[256];
  EXPECT(diffusion_init(d, &c, err, sizeof err) == 0, "%s", err);
}
