/* test_backend_ops.c - the backend op table on every compiled backend (as ggml's test-backend-ops).
 *
 * 1. Every case of the op fixtures (tests/fixtures/ops.safetensors, written by
 *    scripts/gen_op_fixtures.py from PyTorch), forward and backward through autograd on a graph bound
 *    to the backend, compared with the fixture and with the CPU backend's result.
 * 2. The ops no fixture case reaches (fused GroupNorm+SiLU, dropout, label embedding, ReLU,
 *    scale_shift, axpby, the forward process, the channel slice, the learned-variance bound, the Philox fills, GEMM, the fused optimizer step and
 *    its reductions, the memory functions) on generated inputs, compared with the CPU backend
 *    (whose kernels their own tests check against PyTorch and closed forms: test_gradcheck,
 *    test_optim, test_objective, test_rng, test_ops_reference).
 * 3. Every entry of each backend's op table is filled in.
 * 4. A deliberately wrong backend (the CPU ops with silu_forward and axpby broken) must fail exactly
 *    the cases that use those two kernels: the check can fail, and it names the culprit.
 *
 * A new backend is tested by registering it in backend_list (src/backend/backend.c), nothing more.
 * DIFFUSE_REQUIRE_BACKEND=cuda makes the run exit 77 (CTest's skip) where no such device exists.
 * Tolerances, per op, are relative with a floor at the tensor's scale (test_util.h's measure):
 * |got - want| <= tol (|want| + max |want|).
 */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/gaussian.h"
#include "core/rng.h"
#include "test_util.h"

/* ---- tolerances ---- */

typedef struct {
  const char *op;
  double fixture; /* vs PyTorch (float64 references, float32 kernels) */
  double cpu;     /* vs the CPU backend (same algorithm, another order of summation) */
} OpTolerance;

static const OpTolerance TOLERANCES[] = {
    {"conv2d", 1e-5, 1e-5},          {"linear", 1e-5, 1e-5},        {"group_norm", 1e-5, 1e-5},
    {"silu", 1e-5, 1e-6},            {"softmax", 1e-5, 1e-6},       {"attention", 1e-5, 1e-5},
    {"upsample_nearest2x", 1e-5, 0}, {"avg_pool2d", 1e-5, 1e-6},    {"max_pool2d", 1e-5, 0},
    {"global_avg_pool", 1e-5, 1e-6}, {"concat", 1e-5, 0},           {"add", 1e-5, 0},
    {"mul", 1e-5, 0},                {"scale", 1e-5, 0},            {"add_channel", 1e-5, 1e-6},
    {"timestep_embedding", 1e-5, 1e-6}, {"mse", 1e-5, 1e-6},        {"weighted_mse", 1e-5, 1e-6},
    {"bilinear_resize", 1e-5, 1e-6},
    /* generated cases, vs the CPU backend only */
    {"group_norm_silu", 0, 1e-5},    {"dropout", 0, 0},             {"embedding_lookup", 0, 0},
    {"relu", 0, 0},                  {"scale_shift", 0, 1e-7},      {"axpby", 0, 1e-7},
    {"forward_mix", 0, 1e-7},        {"fill_normal", 0, 1e-6},      {"fill_uniform", 0, 0},
    {"gemm", 0, 1e-5},               {"optim_step", 0, 1e-6},       {"sum_squares", 0, 1e-9},
    {"find_nonfinite", 0, 0},        {"memory", 0, 0},              {"channel_slice", 0, 0},
    {"vlb", 0, 1e-5},                {"pool_tokens", 0, 1e-6},      {"cross_entropy", 0, 1e-6},
};

static const OpTolerance *tolerance(const char *op) {
  for (size_t i = 0; i < sizeof TOLERANCES / sizeof TOLERANCES[0]; i++)
    if (!strcmp(TOLERANCES[i].op, op)) return &TOLERANCES[i];
  fprintf(stderr, "FAIL no tolerance stated for op %s\n", op);
  test_failures++;
  static const OpTolerance none = {"?", 0, 0};
  return &none;
}

/* The measure of test_util.h's expect_close; prints the worst element unless quiet. true if close. */
static bool close_enough(const char *what, const float *got, const float *want, size_t n, double tol, bool quiet) {
  double scale = 0.0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
  size_t worst = 0;
  double worst_excess = -1.0;
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    const double diff = fabs((double)got[i] - want[i]), allowed = tol * (fabs((double)want[i]) + scale);
    if (!(diff <= allowed)) ok = false; /* NaN fails */
    if (!(diff - allowed <= worst_excess)) worst_excess = diff - allowed, worst = i;
  }
  if (!ok && !quiet)
    fprintf(stderr, "FAIL %s: element %zu is %.9g, want %.9g (tol %.1g)\n", what, worst, got[worst], want[worst], tol);
  return ok;
}

/* ---- results: every output of a case, on the host ---- */

#define MAX_OUTPUTS 8

typedef struct {
  const char *name[MAX_OUTPUTS];
  float *data[MAX_OUTPUTS];
  size_t n[MAX_OUTPUTS];
  int count;
} Outputs;

static void outputs_add(Outputs *o, const char *name, const BackendMem *src, const Backend *be, size_t n) {
  CHECK(o->count < MAX_OUTPUTS);
  o->name[o->count] = name;
  o->data[o->count] = malloc((n ? n : 1) * sizeof(float));
  backend_download(be, o->data[o->count], src, n * sizeof(float));
  o->n[o->count++] = n;
}

static void outputs_free(Outputs *o) {
  for (int i = 0; i < o->count; i++) free(o->data[i]);
  memset(o, 0, sizeof *o);
}

/* Compare a backend's outputs with the CPU's; the number of mismatching outputs. */
static int compare_with_cpu(const char *label, const Backend *be, const Outputs *got, const Outputs *cpu, double tol,
                            bool quiet) {
  int bad = 0;
  for (int i = 0; i < cpu->count; i++) {
    char what[256];
    snprintf(what, sizeof what, "%s on %s: %s vs the CPU backend", label, be->name, cpu->name[i]);
    if (i >= got->count || got->n[i] != cpu->n[i]) {
      if (!quiet) fprintf(stderr, "FAIL %s: missing or of another size\n", what);
      bad++;
    } else if (!close_enough(what, got->data[i], cpu->data[i], cpu->n[i], tol, quiet)) {
      bad++;
    }
  }
  return bad;
}

/* ---- 1. the fixture cases ---- */

static const char *ROLES[] = {"x", "x2", "x3", "w", "b", "mean", "var"};
#define N_ROLES (int)(sizeof ROLES / sizeof ROLES[0])

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

static Tensor *run_op(Graph *g, Tensor **t, const char *op, const cJSON *a) {
  Tensor *x = t[0], *x2 = t[1], *x3 = t[2], *w = t[3], *b = t[4];
  if (!strcmp(op, "conv2d"))
    return ag_conv2d(g, x, w, b, attr_int(a, "stride_h"), attr_int(a, "stride_w"), attr_int(a, "pad_top"),
                     attr_int(a, "pad_bottom"), attr_int(a, "pad_left"), attr_int(a, "pad_right"));
  if (!strcmp(op, "linear")) return ag_linear(g, x, w, b);
  if (!strcmp(op, "group_norm")) return ag_group_norm(g, x, w, b, attr_int(a, "groups"), (float)attr_double(a, "eps"));
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

/* Run case `name` on be: its output, then the gradient of each input the fixture has one for. */
static bool run_fixture_case(const Backend *be, const SafeTensors *st, const char *name, const char *op,
                             const cJSON *a, Outputs *out) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  const int backward = attr_int(a, "backward");
  char key[256];
  Tensor *t[N_ROLES];
  for (int i = 0; i < N_ROLES; i++) {
    snprintf(key, sizeof key, "%s.%s", name, ROLES[i]);
    t[i] = fixture_tensor(&g, st, key);
    snprintf(key, sizeof key, "%s.g%s", name, ROLES[i]);
    if (t[i] && backward && st_find(st, key)) t[i]->requires_grad = true;
  }
  Tensor *y = run_op(&g, t, op, a);
  bool ok = y != NULL;
  if (y) outputs_add(out, "y", y->data, be, y->numel);
  if (y && backward) {
    snprintf(key, sizeof key, "%s.gy", name);
    Tensor *gy = fixture_tensor(&g, st, key);
    ok = gy && gy->numel == y->numel;
    if (ok) graph_backward_from(&g, y, gy->data);
    for (int i = 0; ok && i < N_ROLES; i++) {
      if (!t[i] || !t[i]->requires_grad) continue;
      ok = t[i]->grad != NULL;
      if (ok) outputs_add(out, ROLES[i], t[i]->grad, be, t[i]->numel);
    }
  }
  graph_free(&g);
  return ok;
}

/* The fixture's expected outputs of a case, in run_fixture_case's order. */
static void fixture_outputs(const SafeTensors *st, const char *name, const Outputs *like, Outputs *want) {
  for (int i = 0; i < like->count; i++) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s%s", name, strcmp(like->name[i], "y") ? "g" : "", like->name[i]);
    const StTensor *t = st_find(st, key);
    char err[256];
    want->name[i] = like->name[i];
    want->n[i] = t ? (size_t)t->numel : 0;
    want->data[i] = malloc((want->n[i] ? want->n[i] : 1) * sizeof(float));
    if (!t || st_tensor_to_f32(t, want->data[i], err, sizeof err)) want->n[i] = (size_t)-1;
  }
  want->count = like->count;
}

/* Every fixture case on be; the names of the failing cases go to failed (when not NULL). */
static int check_fixture_cases(const Backend *be, const SafeTensors *st, bool quiet, char *failed, size_t failed_len) {
  int bad_cases = 0;
  for (int c = 0; c < st->n_meta; c++) {
    const char *name = st->meta[c].key;
    cJSON *a = cJSON_Parse(st->meta[c].value);
    const cJSON *opj = cJSON_GetObjectItemCaseSensitive(a, "op");
    EXPECT(cJSON_IsString(opj), "case %s: metadata without op", name);
    if (!cJSON_IsString(opj)) {
      cJSON_Delete(a);
      continue;
    }
    const char *op = opj->valuestring;
    const OpTolerance *tol = tolerance(op);
    Outputs got = {0}, cpu = {0}, want = {0};
    const bool ran = run_fixture_case(be, st, name, op, a, &got);
    EXPECT(ran, "case %s (%s) did not run on %s", name, op, be->name);
    int bad = 0;
    fixture_outputs(st, name, &got, &want);
    for (int i = 0; ran && i < got.count; i++) {
      char what[256];
      snprintf(what, sizeof what, "%s (%s) on %s: %s vs the fixture", name, op, be->name, got.name[i]);
      EXPECT(want.n[i] == got.n[i], "%s: fixture tensor missing or of another size", what);
      if (want.n[i] == got.n[i]) bad += !close_enough(what, got.data[i], want.data[i], got.n[i], tol->fixture, quiet);
    }
    if (ran && be != backend_cpu()) {
      run_fixture_case(backend_cpu(), st, name, op, a, &cpu);
      bad += compare_with_cpu(name, be, &got, &cpu, tol->cpu, quiet);
    }
    if (bad) {
      bad_cases++;
      if (failed) snprintf(failed + strlen(failed), failed_len - strlen(failed), "%s%s", *failed ? " " : "", op);
    }
    outputs_free(&got), outputs_free(&cpu), outputs_free(&want);
    cJSON_Delete(a);
  }
  return bad_cases;
}

/* ---- 2. generated cases: the ops no fixture case reaches ---- */

/* n normal floats (stream `stream`), uploaded. */
static BackendMem *random_mem(const Backend *be, size_t n, uint64_t stream) {
  float *h = malloc(n * sizeof(float));
  rng_fill_normal(h, n, 1234, stream, 0);
  BackendMem *m = backend_alloc_or_exit(be, n * sizeof(float), "test");
  backend_upload(be, m, h, n * sizeof(float));
  free(h);
  return m;
}

static Tensor *random_tensor(Graph *g, int ndim, const int *shape, uint64_t stream, bool grad) {
  Tensor *t = graph_tensor(g, ndim, shape);
  float *h = malloc(t->numel * sizeof(float));
  rng_fill_normal(h, t->numel, 99, stream, 0);
  tensor_upload(t, h);
  free(h);
  t->requires_grad = grad;
  return t;
}

/* Backward of sum(y * gy) with a generated gy. */
static void backward_random(Graph *g, Tensor *y) {
  Tensor *gy = random_tensor(g, y->ndim, y->shape, 500, false);
  graph_backward_from(g, y, gy->data);
}

static void case_group_norm_silu(const Backend *be, Outputs *o) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  Tensor *x = random_tensor(&g, 4, (const int[]){2, 8, 5, 6}, 1, true);
  Tensor *gamma = random_tensor(&g, 1, (const int[]){8}, 2, true), *beta = random_tensor(&g, 1, (const int[]){8}, 3, true);
  Tensor *y = ag_group_norm_silu(&g, x, gamma, beta, 4, 1e-5f);
  outputs_add(o, "y", y->data, be, y->numel);
  backward_random(&g, y);
  outputs_add(o, "dx", x->grad, be, x->numel);
  outputs_add(o, "dgamma", gamma->grad, be, gamma->numel);
  outputs_add(o, "dbeta", beta->grad, be, beta->numel);
  graph_free(&g);
}

static void case_dropout(const Backend *be, Outputs *o) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  g.training = true, g.dropout_seed = 17, g.first_sample = 3;
  Tensor *x = random_tensor(&g, 4, (const int[]){3, 4, 7, 5}, 4, true);
  Tensor *y = ag_dropout(&g, x, 0.3f);
  outputs_add(o, "y", y->data, be, y->numel);
  backward_random(&g, y);
  outputs_add(o, "dx", x->grad, be, x->numel);
  graph_free(&g);
}

static void case_embedding_lookup(const Backend *be, Outputs *o) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  Tensor *table = random_tensor(&g, 2, (const int[]){5, 12}, 5, true);
  const int labels[6] = {4, 0, 2, 2, 1, 4};
  Tensor *y = ag_embedding_lookup(&g, table, labels, 6);
  outputs_add(o, "y", y->data, be, y->numel);
  backward_random(&g, y);
  outputs_add(o, "dtable", table->grad, be, table->numel);
  graph_free(&g);
}

enum { N_POINTWISE = 3001 }; /* odd, past any vector width */

static void case_relu(const Backend *be, Outputs *o) {
  BackendMem *x = random_mem(be, N_POINTWISE, 6), *y = backend_alloc_or_exit(be, N_POINTWISE * sizeof(float), "test");
  be->ops->relu_forward(be, y, x, N_POINTWISE);
  outputs_add(o, "y", y, be, N_POINTWISE);
  be->ops->relu_forward(be, x, x, N_POINTWISE); /* in place */
  outputs_add(o, "in place", x, be, N_POINTWISE);
  be->ops->free(be, x), be->ops->free(be, y);
}

static void case_scale_shift(const Backend *be, Outputs *o) {
  BackendMem *x = random_mem(be, N_POINTWISE, 7), *y = backend_alloc_or_exit(be, N_POINTWISE * sizeof(float), "test");
  be->ops->scale_shift(be, y, x, 2.0f, -1.0f, N_POINTWISE);
  outputs_add(o, "y", y, be, N_POINTWISE);
  be->ops->free(be, x), be->ops->free(be, y);
}

static void case_axpby(const Backend *be, Outputs *o) {
  BackendMem *x = random_mem(be, N_POINTWISE, 8), *z = random_mem(be, N_POINTWISE, 9);
  BackendMem *y = backend_alloc_or_exit(be, N_POINTWISE * sizeof(float), "test");
  be->ops->axpby(be, y, 0.75f, x, -1.5f, z, N_POINTWISE);
  outputs_add(o, "y", y, be, N_POINTWISE);
  be->ops->axpby(be, z, 0.0f, x, 1.0f, z, N_POINTWISE); /* y aliasing z */
  outputs_add(o, "aliased", z, be, N_POINTWISE);
  be->ops->free(be, x), be->ops->free(be, y), be->ops->free(be, z);
}

static void case_forward_mix(const Backend *be, Outputs *o) {
  enum { B = 3, M = 777 };
  BackendMem *x0 = random_mem(be, B * M, 10), *noise = random_mem(be, B * M, 11);
  const float coef[B * 4] = {0.9f, 0.43f, 0.0f, 1.0f, 0.5f, 0.86f, 1.0f, 0.0f, 0.2f, 0.98f, -0.98f, 0.2f};
  BackendMem *c = backend_alloc_or_exit(be, sizeof coef, "test");
  backend_upload(be, c, coef, sizeof coef);
  BackendMem *xt = backend_alloc_or_exit(be, B * M * sizeof(float), "test");
  BackendMem *target = backend_alloc_or_exit(be, B * M * sizeof(float), "test");
  be->ops->forward_mix(be, xt, target, x0, noise, c, B, M);
  outputs_add(o, "xt", xt, be, B * M);
  outputs_add(o, "target", target, be, B * M);
  be->ops->free(be, x0), be->ops->free(be, noise), be->ops->free(be, c), be->ops->free(be, xt), be->ops->free(be, target);
}

static void case_fill_normal(const Backend *be, Outputs *o) {
  BackendMem *x = backend_alloc_or_exit(be, N_POINTWISE * sizeof(float), "test");
  be->ops->fill_normal(be, x, N_POINTWISE, 5, 77, 13); /* an offset that is not a multiple of 4 */
  outputs_add(o, "x", x, be, N_POINTWISE);
  be->ops->free(be, x);
}

static void case_fill_uniform(const Backend *be, Outputs *o) {
  BackendMem *x = backend_alloc_or_exit(be, N_POINTWISE * sizeof(float), "test");
  be->ops->fill_uniform(be, x, N_POINTWISE, 5, 78, 6);
  outputs_add(o, "x", x, be, N_POINTWISE);
  be->ops->free(be, x);
}

static void case_gemm(const Backend *be, Outputs *o) {
  enum { M = 37, N = 29, K = 53 };
  static const char *const names[4] = {"NN", "TN", "NT", "TT"};
  for (int form = 0; form < 4; form++) {
    const bool ta = form & 1, tb = form & 2;
    BackendMem *A = random_mem(be, M * K, 20 + form), *B = random_mem(be, K * N, 30 + form), *C = random_mem(be, M * N, 40);
    be->ops->gemm(be, ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 1.0f, C, N);
    outputs_add(o, names[form], C, be, M * N);
    be->ops->free(be, A), be->ops->free(be, B), be->ops->free(be, C);
  }
}

static void case_optim_step(const Backend *be, Outputs *o) {
  enum { N = 70001 }; /* above the kernels' threading threshold */
  BackendMem *p = random_mem(be, N, 50), *g = random_mem(be, N, 51), *m = random_mem(be, N, 52);
  BackendMem *v = random_mem(be, N, 53), *ema = random_mem(be, N, 54);
  be->ops->scale_shift(be, v, v, 0.0f, 0.25f, N); /* second moments must be >= 0 */
  const OptimStep s = {2e-4, 0.9, 0.999, 1e-8, 0.01, 7, 0.5f, 0.999};
  be->ops->optim_step(be, p, g, m, v, ema, N, &s);
  outputs_add(o, "p", p, be, N), outputs_add(o, "m", m, be, N), outputs_add(o, "v", v, be, N);
  outputs_add(o, "ema", ema, be, N);
  be->ops->optim_step(be, p, g, m, v, NULL, N, &s); /* without an EMA */
  outputs_add(o, "p without ema", p, be, N);
  be->ops->free(be, p), be->ops->free(be, g), be->ops->free(be, m), be->ops->free(be, v), be->ops->free(be, ema);
}

/* Reductions return host values: they are compared as one-element outputs. */
static void add_host_value(Outputs *o, const char *name, float v) {
  CHECK(o->count < MAX_OUTPUTS);
  o->name[o->count] = name;
  o->data[o->count] = malloc(sizeof(float));
  o->data[o->count][0] = v;
  o->n[o->count++] = 1;
}

static void case_sum_squares(const Backend *be, Outputs *o) {
  enum { N = 100003 };
  BackendMem *x = random_mem(be, N, 60);
  add_host_value(o, "sum", (float)be->ops->sum_squares(be, x, N));
  add_host_value(o, "prefix", (float)be->ops->sum_squares(be, x, 1001));
  be->ops->free(be, x);
}

static void case_find_nonfinite(const Backend *be, Outputs *o) {
  enum { N = 100003 };
  BackendMem *x = random_mem(be, N, 61);
  add_host_value(o, "all finite", (float)be->ops->find_nonfinite(be, x, N));
  const float bad[3] = {INFINITY, NAN, -INFINITY};
  const size_t at[3] = {90001, 70000, 99999};
  for (int i = 0; i < 3; i++) backend_upload(be, mem_floats_at(x, at[i]), &bad[i], sizeof(float));
  add_host_value(o, "first of three", (float)be->ops->find_nonfinite(be, x, N));
  be->ops->free(be, x);
}

/* alloc, upload, download, memset, copy (overlapping both ways). */
static void case_memory(const Backend *be, Outputs *o) {
  enum { N = 1000 };
  BackendMem *a = random_mem(be, N, 70), *b = backend_alloc_or_exit(be, N * sizeof(float), "test");
  be->ops->copy(be, b, a, N * sizeof(float));
  outputs_add(o, "copy", b, be, N);
  be->ops->copy(be, mem_floats_at(a, 100), a, 500 * sizeof(float)); /* overlapping, forward */
  be->ops->copy(be, b, mem_floats_at(b, 3), 900 * sizeof(float));   /* overlapping, backward */
  outputs_add(o, "overlap up", a, be, N);
  outputs_add(o, "overlap down", b, be, N);
  be->ops->memset(be, mem_floats_at(a, 10), 0, 17 * sizeof(float));
  outputs_add(o, "memset", a, be, N);
  be->ops->free(be, a), be->ops->free(be, b);
}
static void case_channel_slice(const Backend *be, Outputs *o) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  Tensor *x = random_tensor(&g, 4, (const int[]){3, 5, 7, 9}, 12, true);
  Tensor *y = ag_add(&g, ag_channel_slice(&g, x, 0, 2), ag_channel_slice(&g, x, 3, 2)); /* two slices of one x */
  outputs_add(o, "y", y->data, be, y->numel);
  backward_random(&g, y);
  outputs_add(o, "dx", x->grad, be, x->numel);
  graph_free(&g);
}

/* Both gradient modes of the bound; sample 1 is the decoder, sample 2 has a large weight. */
/* ADM's attention-pool tokens and the first-token pick, chained, and the classifier's cross-entropy. */
static void case_pool_tokens(const Backend *be, Outputs *o) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  Tensor *x = random_tensor(&g, 4, (const int[]){3, 5, 6, 7}, 16, true);
  Tensor *pos = random_tensor(&g, 2, (const int[]){5, 43}, 17, true);
  Tensor *tok = ag_pool_tokens(&g, x, pos);
  Tensor *y = ag_first_token(&g, ag_mul(&g, tok, tok)); /* both the mean token and the others get gradients */
  outputs_add(o, "tokens", tok->data, be, tok->numel);
  outputs_add(o, "first", y->data, be, y->numel);
  Tensor *s = ag_mse(&g, tok, ag_scale(&g, tok, 0.5f));
  graph_backward(&g, ag_add(&g, s, ag_mse(&g, y, ag_scale(&g, y, 0.0f))));
  outputs_add(o, "dx", x->grad, be, x->numel);
  outputs_add(o, "dpos", pos->grad, be, pos->numel);
  graph_free(&g);
}
static void case_cross_entropy(const Backend *be, Outputs *o) {
  Graph g;
  graph_init(&g, be, 1 << 20);
  Tensor *logits = random_tensor(&g, 2, (const int[]){37, 10}, 18, true);
  int labels[37];
  for (int b = 0; b < 37; b++) labels[b] = (b * 7) % 10;
  Tensor *y = ag_cross_entropy(&g, ag_scale(&g, logits, 4.0f), labels); /* logits of a few units: a peaked softmax */
  outputs_add(o, "loss", y->data, be, 1);
  backward_random(&g, y);
  outputs_add(o, "dlogits", logits->grad, be, logits->numel);
  graph_free(&g);
}
static void case_vlb(const Backend *be, Outputs *o) {
  for (int grad_mean = 0; grad_mean < 2; grad_mean++) {
    Graph g;
    graph_init(&g, be, 1 << 20);
    Tensor *net = random_tensor(&g, 4, (const int[]){3, 6, 11, 13}, 13, true);
    Tensor *xt = random_tensor(&g, 4, (const int[]){3, 3, 11, 13}, 14, false);
    Tensor *x0 = random_tensor(&g, 4, (const int[]){3, 3, 11, 13}, 15, false);
    const float coef[3 * VLB_COEFS] = {0.5f, -0.4f, 0.3f, -3.0f, -3.0f, -2.0f, 0.0f, 1.5f,
                                       1.0f, -1.0f, 0.1f, -5.0f, -5.0f, -4.6f, 1.0f, 0.7f,
                                       0.02f, -0.03f, 0.01f, -9.0f, -9.0f, -8.5f, 0.0f, 1000.0f};
    Tensor *terms, *c = graph_tensor_upload(&g, 2, (const int[]){3, VLB_COEFS}, coef);
    Tensor *y = ag_vlb_loss(&g, net, xt, x0, c, grad_mean, &terms);
    outputs_add(o, "loss", y->data, be, 1);
    outputs_add(o, "terms", terms->data, be, 3);
    backward_random(&g, y);
    outputs_add(o, grad_mean ? "dnet (grad_mean)" : "dnet", net->grad, be, net->numel);
    graph_free(&g);
  }
}

typedef struct {
  const char *op;
  void (*run)(const Backend *be, Outputs *o);
} GeneratedCase;

static const GeneratedCase GENERATED[] = {
    {"group_norm_silu", case_group_norm_silu}, {"dropout", case_dropout},
    {"embedding_lookup", case_embedding_lookup}, {"relu", case_relu},
    {"scale_shift", case_scale_shift},         {"axpby", case_axpby},
    {"forward_mix", case_forward_mix},         {"fill_normal", case_fill_normal},
    {"fill_uniform", case_fill_uniform},       {"gemm", case_gemm},
    {"optim_step", case_optim_step},           {"sum_squares", case_sum_squares},
    {"find_nonfinite", case_find_nonfinite},   {"memory", case_memory},
    {"channel_slice", case_channel_slice},     {"vlb", case_vlb},
    {"pool_tokens", case_pool_tokens},         {"cross_entropy", case_cross_entropy},
};
#define N_GENERATED (int)(sizeof GENERATED / sizeof GENERATED[0])

static int check_generated_cases(const Backend *be, bool quiet, char *failed, size_t failed_len) {
  int bad_cases = 0;
  for (int c = 0; c < N_GENERATED; c++) {
    Outputs got = {0}, cpu = {0};
    GENERATED[c].run(be, &got);
    GENERATED[c].run(backend_cpu(), &cpu);
    const int bad = compare_with_cpu(GENERATED[c].op, be, &got, &cpu, tolerance(GENERATED[c].op)->cpu, quiet);
    if (bad) {
      bad_cases++;
      if (failed)
        snprintf(failed + strlen(failed), failed_len - strlen(failed), "%s%s", *failed ? " " : "", GENERATED[c].op);
    }
    outputs_free(&got), outputs_free(&cpu);
  }
  return bad_cases;
}

/* The CPU backend's own generated outputs against closed forms (the comparisons above are relative
 * to it): ReLU, scale_shift, axpby, forward_mix, the fills (core/rng.h) and find_nonfinite. */
static void check_cpu_closed_forms(void) {
  const Backend *cpu = backend_cpu();
  Outputs o = {0};
  case_find_nonfinite(cpu, &o);
  EXPECT(o.data[0][0] == 100003.0f && o.data[1][0] == 70000.0f, "find_nonfinite: %g, %g", o.data[0][0], o.data[1][0]);
  outputs_free(&o);
  case_fill_normal(cpu, &o);
  float *want = malloc(N_POINTWISE * sizeof(float));
  rng_fill_normal(want, N_POINTWISE, 5, 77, 13);
  EXPECT(!memcmp(want, o.data[0], N_POINTWISE * sizeof(float)), "fill_normal differs from rng_fill_normal");
  outputs_free(&o);
  case_scale_shift(cpu, &o);
  rng_fill_normal(want, N_POINTWISE, 1234, 7, 0);
  bool ok = true;
  for (int i = 0; i < N_POINTWISE; i++) ok &= o.data[0][i] == 2.0f * want[i] - 1.0f;
  EXPECT(ok, "scale_shift is not 2x - 1");
  outputs_free(&o);
  case_relu(cpu, &o);
  rng_fill_normal(want, N_POINTWISE, 1234, 6, 0);
  ok = true;
  for (int i = 0; i < N_POINTWISE; i++) ok &= o.data[0][i] == (want[i] > 0 ? want[i] : 0.0f) && o.data[1][i] == o.data[0][i];
  EXPECT(ok, "relu is not max(x, 0)");
  outputs_free(&o);
  free(want);
}

/* ---- 3. complete op tables ---- */

typedef void (*AnyFn)(void);

static void check_table_complete(const Backend *be) {
  AnyFn fns[sizeof(BackendOps) / sizeof(AnyFn)];
  memcpy(fns, be->ops, sizeof fns);
  int missing = 0;
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) missing += fns[i] == NULL;
  EXPECT(missing == 0, "%s: %d entries of the op table are NULL", be->name, missing);
}

/* ---- 4. a deliberately wrong backend ---- */

static void wrong_silu_forward(const Backend *be, BackendMem *y, const BackendMem *x, size_t n) {
  backend_cpu()->ops->silu_forward(be, y, x, n);
  float v;
  backend_download(be, &v, y, sizeof v);
  v += 1e-3f; /* one element slightly off */
  backend_upload(be, y, &v, sizeof v);
}

static void wrong_axpby(const Backend *be, BackendMem *y, float a, const BackendMem *x, float b, const BackendMem *z,
                        size_t n) {
  backend_cpu()->ops->axpby(be, y, a, x, b, z, n - 1); /* forgets the last element */
}

static void check_wrong_backend(const SafeTensors *st) {
  BackendOps ops = *backend_cpu()->ops;
  ops.silu_forward = wrong_silu_forward;
  ops.axpby = wrong_axpby;
  const Backend wrong = {"wrong-test-backend", &ops, NULL};
  const int before = test_failures;
  char fixture_failed[512] = "", generated_failed[512] = "";
  const int bad_fixture = check_fixture_cases(&wrong, st, true, fixture_failed, sizeof fixture_failed);
  const int bad_generated = check_generated_cases(&wrong, true, generated_failed, sizeof generated_failed);
  EXPECT(test_failures == before, "the wrong backend's run itself failed to run");
  printf("backend_ops: the deliberately wrong backend (silu_forward off by 1e-3 in one element, axpby skipping the "
         "last) fails %d fixture case(s) [%s] and %d generated case(s) [%s]\n",
         bad_fixture, fixture_failed, bad_generated, generated_failed);
  EXPECT(bad_fixture == 1 && !strcmp(fixture_failed, "silu"), "wrong silu_forward: failing fixture cases [%s]",
         fixture_failed);
  EXPECT(bad_generated == 1 && !strcmp(generated_failed, "axpby"), "wrong axpby: failing generated cases [%s]",
         generated_failed);
}

int main(void) {
  SafeTensors st;
  load_fixture(&st, "ops.safetensors");
  EXPECT(st.n_meta >= 39, "only %d cases in the fixture", st.n_meta);
  const Backend *backends[16];
  const int n = backend_list(backends, 16);
  EXPECT(n >= 1 && backends[0] == backend_cpu(), "backend_list does not start with the CPU backend");
  const char *required = getenv("DIFFUSE_REQUIRE_BACKEND"); /* e.g. "cuda": skip (77) when it has no device here */
  bool found = !required;
  for (int i = 0; i < n && !found; i++) found = !strncmp(backends[i]->name, required, strlen(required));
  if (!found) {
    printf("backend_ops: skipped: no %s device on this machine\n", required);
    st_free(&st);
    return 77;
  }
  check_cpu_closed_forms();
  for (int i = 0; i < n; i++) {
    check_table_complete(backends[i]);
    const int bad_fixture = check_fixture_cases(backends[i], &st, false, NULL, 0);
    const int bad_generated = check_generated_cases(backends[i], false, NULL, 0);
    printf("backend_ops: %s (%s): %d fixture cases, %d generated cases, %d failing\n", backends[i]->name,
           backends[i]->ops->describe(backends[i]), st.n_meta, N_GENERATED, bad_fixture + bad_generated);
  }
  check_wrong_backend(&st);
  st_free(&st);
  return test_report("backend_ops");
}
