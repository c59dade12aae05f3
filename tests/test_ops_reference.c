/* test_ops_reference.c - every op (forward and backward) against PyTorch.
 *
 * Fixtures: tests/fixtures/ops.safetensors, written by scripts/gen_op_fixtures.py. Each case's
 * metadata names the op and its attributes; tensors are <case>.{x,x2,x3,w,b,mean,var} inputs,
 * <case>.y the output, <case>.gy the upstream gradient and <case>.g<role> the expected gradients.
 * Tolerance: 1e-5 relative to the element, floored at the tensor's scale (see test_util.h).
 */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/simd_exp.h"
#include "autograd/functions.h"
#include "core/rng.h"
#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "test_util.h"

#define OP_TOL 1e-5

static const char *ROLES[] = {"x", "x2", "x3", "w", "b", "mean", "var"};
#define N_ROLES (int)(sizeof ROLES / sizeof ROLES[0])

typedef struct {
  const char *name;
  Tensor *t[N_ROLES];
} Case;

static Tensor *role(Case *c, const char *r) {
  for (int i = 0; i < N_ROLES; i++)
    if (strcmp(ROLES[i], r) == 0) return c->t[i];
  return NULL;
}

static int attr_int(const cJSON *a, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, key);
  if (!cJSON_IsNumber(v) && !cJSON_IsBool(v)) {
    fprintf(stderr, "FAIL fixture attribute '%s' missing\n", key);
    test_failures++;
    return 0;
  }
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valueint;
}

static double attr_double(const cJSON *a, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static Tensor *run_op(Graph *g, Case *c, const char *op, const cJSON *a) {
  Tensor *x = role(c, "x"), *x2 = role(c, "x2"), *x3 = role(c, "x3"), *w = role(c, "w"), *b = role(c, "b");
  if (!strcmp(op, "conv2d"))
    return ag_conv2d(g, x, w, b, attr_int(a, "stride_h"), attr_int(a, "stride_w"), attr_int(a, "pad_top"),
                     attr_int(a, "pad_bottom"), attr_int(a, "pad_left"), attr_int(a, "pad_right"));
  if (!strcmp(op, "linear")) return ag_linear(g, x, w, b);
  if (!strcmp(op, "group_norm"))
    return ag_group_norm(g, x, w, b, attr_int(a, "groups"), (float)attr_double(a, "eps"));
  if (!strcmp(op, "silu")) return ag_silu(g, x);
  if (!strcmp(op, "softmax")) return ag_softmax(g, x);
  if (!strcmp(op, "attention")) return ag_attention(g, x, x2, x3);
  if (!strcmp(op, "upsample_nearest2x")) return ag_upsample_nearest2x(g, x);
  if (!strcmp(op, "avg_pool2d"))
    return ag_avg_pool2d(g, x, attr_int(a, "kernel"), attr_int(a, "stride"), attr_int(a, "pad"),
                         attr_int(a, "count_include_pad"));
  if (!strcmp(op, "max_pool2d")) return ag_max_pool2d(g, x, attr_int(a, "kernel"), attr_int(a, "stride"), attr_int(a, "pad"));
  if (!strcmp(op, "global_avg_pool")) return ag_global_avg_pool(g, x);
  if (!strcmp(op, "concat")) return ag_concat_channels(g, x, x2);
  if (!strcmp(op, "add")) return ag_add(g, x, x2);
  if (!strcmp(op, "mul")) return ag_mul(g, x, x2);
  if (!strcmp(op, "scale")) return ag_scale(g, x, (float)attr_double(a, "alpha"));
  if (!strcmp(op, "add_channel")) return ag_add_channel(g, x, x2);
  if (!strcmp(op, "timestep_embedding")) return ag_timestep_embedding(g, x, attr_int(a, "dim"));
  if (!strcmp(op, "mse")) return ag_mse(g, x, x2);
  if (!strcmp(op, "weighted_mse")) return ag_weighted_mse(g, x, x2, w);
  if (!strcmp(op, "bilinear_resize")) return ag_bilinear_resize(g, x, attr_int(a, "out_h"), attr_int(a, "out_w"));
  return NULL;
}

static void run_case(Graph *g, const SafeTensors *st, const char *name, const char *json) {
  cJSON *a = cJSON_Parse(json);
  const cJSON *opj = cJSON_GetObjectItemCaseSensitive(a, "op");
  EXPECT(cJSON_IsString(opj), "case %s: metadata without op", name);
  if (!cJSON_IsString(opj)) goto out;
  const char *op = opj->valuestring;
  const int backward = attr_int(a, "backward");
  char key[256];
  Case c = {name, {0}};
  for (int i = 0; i < N_ROLES; i++) {
    snprintf(key, sizeof key, "%s.%s", name, ROLES[i]);
    c.t[i] = fixture_tensor(g, st, key);
    snprintf(key, sizeof key, "%s.g%s", name, ROLES[i]);
    if (c.t[i] && backward && st_find(st, key)) c.t[i]->requires_grad = true;
  }
  Tensor *y = run_op(g, &c, op, a);
  EXPECT(y != NULL, "case %s: unknown op %s", name, op);
  if (!y) goto out;
  snprintf(key, sizeof key, "%s.y", name);
  Tensor *want = fixture_tensor(g, st, key);
  EXPECT(want && want->numel == y->numel, "case %s: output size %zu vs fixture", name, y->numel);
  if (!want || want->numel != y->numel) goto out;
  snprintf(key, sizeof key, "%s forward", name);
  expect_close(key, y->data, want->data, y->numel, OP_TOL);
  if (backward) {
    snprintf(key, sizeof key, "%s.gy", name);
    Tensor *gy = fixture_tensor(g, st, key);
    EXPECT(gy && gy->numel == y->numel, "case %s: gy missing", name);
    if (!gy || gy->numel != y->numel) goto out;
    graph_backward_from(g, y, gy->data);
    int n_grads = 0;
    for (int i = 0; i < N_ROLES; i++) {
      if (!c.t[i] || !c.t[i]->requires_grad) continue;
      snprintf(key, sizeof key, "%s.g%s", name, ROLES[i]);
      Tensor *gw = fixture_tensor(g, st, key);
      EXPECT(c.t[i]->grad != NULL, "case %s: no gradient reached %s", name, ROLES[i]);
      if (!c.t[i]->grad) continue;
      snprintf(key, sizeof key, "%s grad %s", name, ROLES[i]);
      expect_close(key, c.t[i]->grad, gw->data, gw->numel, OP_TOL);
      n_grads++;
    }
    EXPECT(n_grads > 0, "case %s: backward case without expected gradients", name);
  }
out:
  cJSON_Delete(a);
}

/* The vectorisable exp behind SiLU and softmax, against the double-precision exp. */
static void test_simd_exp(void) {
  double worst = 0.0, worst_x = 0.0;
  for (int i = 0; i <= 1753000; i++) {
    const float x = -87.0f + 1e-4f * (float)i;
    const double rel = fabs(simd_expf(x) / exp((double)x) - 1.0);
    if (rel > worst) worst = rel, worst_x = x;
  }
  EXPECT(worst < 2e-7, "simd_expf relative error %.3g at x = %g", worst, worst_x);
  EXPECT(simd_expf(-1000.0f) >= 0.0f && simd_expf(-1000.0f) < 1e-37f && isfinite(simd_expf(1000.0f)),
         "simd_expf out of range: %g %g", simd_expf(-1000.0f), simd_expf(1000.0f));
  /* defined for every input (UBSan checks the NaN path has no undefined conversion or shift) */
  EXPECT(isnan(simd_expf(NAN)) && isnan(simd_silu(NAN)), "simd_expf(NaN) = %g, silu(NaN) = %g", simd_expf(NAN),
         simd_silu(NAN));
  EXPECT(simd_expf(-INFINITY) < 1e-37f && isfinite(simd_expf(INFINITY)), "simd_expf(+-inf): %g %g",
         simd_expf(-INFINITY), simd_expf(INFINITY));
  printf("ops_reference: simd_expf max relative error %.3g\n", worst);
}

/* Dropout: keep rate, scaling, and the same mask when the elements are split between calls at an
 * offset that is not a multiple of the four elements one Philox call serves. */
static void test_dropout_mask(void) {
  enum { N = 20001, SPLIT = 7 };
  const float p = 0.3f;
  static float x[N], y[N], y_split[N];
  static uint8_t mask[N], mask_split[N];
  for (int i = 0; i < N; i++) x[i] = 1.0f + (float)(i % 13);
  dropout_forward(y, mask, x, N, p, 11, 3, 5);
  dropout_forward(y_split, mask_split, x, SPLIT, p, 11, 3, 5);
  dropout_forward(y_split + SPLIT, mask_split + SPLIT, x + SPLIT, N - SPLIT, p, 11, 3, 5 + SPLIT);
  int kept = 0, bad = 0, uniform_quads = 0; /* quads: the four elements of one Philox call */
  for (int i = 0; i < N; i++) {
    kept += mask[i];
    bad += y[i] != (mask[i] ? x[i] * (1.0f / (1.0f - p)) : 0.0f);
  }
  for (int i = 3; i + 4 <= N; i += 4) uniform_quads += mask[i] == mask[i + 1] && mask[i] == mask[i + 2] && mask[i] == mask[i + 3];
  const double rate = (double)kept / N, se = sqrt(0.7 * 0.3 / N);
  EXPECT(fabs(rate - 0.7) < 4 * se, "dropout keep rate %.4f, expected 0.7 +- %.4f", rate, 4 * se);
  EXPECT(bad == 0, "%d dropout outputs neither dropped nor scaled by 1/(1-p)", bad);
  EXPECT(uniform_quads < 0.4 * N / 4, "%d of %d quads share one mask value (expected 25%%)", uniform_quads, N / 4);
  EXPECT(!memcmp(mask, mask_split, N) && !memcmp(y, y_split, sizeof y), "dropout mask depends on the split");
}

typedef void (*GemmFn)(bool, bool, int, int, int, float, const float *, int, const float *, int, float, float *,
                       int);

/* A GEMM against a double-precision product, on shapes with edges in every dimension, A and B plain
 * and transposed, alpha 1 and 0.5, beta 0 and 1. */
static void check_gemm(const char *name, GemmFn fn) {
  static const int shapes[][3] = {{8, 32, 16}, {13, 45, 7}, {1, 1, 1}, {32, 256, 32}, {70, 33, 129}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int form = 0; form < 8; form++) {
      const bool trans_a = form & 1, trans_b = form & 2;
      const float alpha = form & 4 ? 0.5f : 1.0f, beta = (float)((form + (int)s) % 2);
      const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      const int lda = (trans_a ? M : K) + 3, ldb = (trans_b ? K : N) + 5, ldc = N + 2;
      const int rows_a = trans_a ? K : M, rows_b = trans_b ? N : K;
      float *A = malloc(sizeof(float) * rows_a * lda), *B = malloc(sizeof(float) * rows_b * ldb);
      float *C = malloc(sizeof(float) * M * ldc), *want = malloc(sizeof(float) * M * ldc);
      rng_fill_normal(A, (size_t)rows_a * lda, 5, s, 0);
      rng_fill_normal(B, (size_t)rows_b * ldb, 6, s, 0);
      rng_fill_normal(C, (size_t)M * ldc, 7, s, 0);
      memcpy(want, C, sizeof(float) * M * ldc);
      fn(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      double worst = 0.0;
      for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
          double ref = want[(size_t)i * ldc + j]; /* columns past N must stay untouched */
          if (j < N) {
            double dot = 0.0;
            for (int k = 0; k < K; k++)
              dot += (double)(trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            ref = alpha * dot + beta * ref;
          }
          worst = fmax(worst, fabs(C[(size_t)i * ldc + j] - ref) / (1.0 + fabs(ref)));
        }
      EXPECT(worst < 1e-5, "%s %dx%dx%d trans_a %d trans_b %d alpha %g beta %g: error %.3g", name, M, N, K, trans_a,
             trans_b, alpha, beta, worst);
      free(A), free(B), free(C), free(want);
    }
}

/* gemm (whichever kernel it picks here), and our AVX-512 kernel itself wherever the CPU has AVX-512. */
static void test_gemm(void) {
  check_gemm("gemm", gemm);
  if (gemm_avx512_available()) check_gemm("gemm_avx512", gemm_avx512);
  printf("ops_reference: gemm%s checked\n", gemm_avx512_available() ? " and the AVX-512 kernel" : "");
}

int main(void) {
  test_simd_exp();
  test_gemm();
  test_dropout_mask();
  SafeTensors st;
  load_fixture(&st, "ops.safetensors");
  Graph g;
  graph_init(&g, 1 << 20);
  int n_cases = 0;
  for (int i = 0; i < st.n_meta; i++) {
    graph_reset(&g);
    run_case(&g, &st, st.meta[i].key, st.meta[i].value);
    n_cases++;
  }
  EXPECT(n_cases >= 39, "only %d cases in the fixture", n_cases);
  printf("ops_reference: %d cases\n", n_cases);
  graph_free(&g);
  st_free(&st);
  return test_report("ops_reference");
}
