/* test_unet.c - the U-Net against a PyTorch reference (scripts/gen_unet_fixtures.py, diffusers
 * key names, synthetic weights from tests/synthetic.c), plus structural checks:
 *  - exact parameter counts (CIFAR-10 DDPM: 35,746,307);
 *  - small config: output, every parameter gradient and the input gradient vs PyTorch;
 *  - class-conditional small config: output and class-embedding gradient vs PyTorch;
 *  - full CIFAR-10 config: output and, per parameter, gradient norm and a random projection;
 *  - finite differences through the whole network for sampled parameters and inputs;
 *  - each image of a batch is independent of the others; grad mode does not change outputs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/error.h"
#include "nn/unet.h"
#include "synthetic.h"
#include "test_util.h"

#define UNET_TOL 1e-4 /* ~50 layers of fp32 accumulation in different orders */

/* The key-projection bias shifts every logit of a query by the same q.b, which softmax ignores:
 * its exact gradient is zero and both implementations hold only rounding noise. Instead of a
 * comparison, check that noise is negligible against the key weight's gradient. */
static bool is_key_bias(const char *name) {
  const size_t n = strlen(name);
  return n >= 9 && strcmp(name + n - 9, "to_k.bias") == 0;
}

static void expect_key_bias_negligible(ParamTable *p, int i) {
  char wname[PARAM_NAME_MAX];
  snprintf(wname, sizeof wname, "%.*sweight", (int)(strlen(p->info[i].name) - 4), p->info[i].name);
  const int w = params_find(p, wname);
  double nb = 0, nw = 0;
  for (size_t k = 0; k < p->info[i].numel; k++) nb += (double)cpu_floats(p->tensors[i].grad)[k] * cpu_floats(p->tensors[i].grad)[k];
  for (size_t k = 0; k < p->info[w].numel; k++) nw += (double)cpu_floats(p->tensors[w].grad)[k] * cpu_floats(p->tensors[w].grad)[k];
  EXPECT(sqrt(nb) <= 1e-4 * sqrt(nw), "%s: gradient norm %.3g should be ~0 (key weight's: %.3g)", p->info[i].name,
         sqrt(nb), sqrt(nw));
}


static size_t count_params(const UNet *m) {
  size_t n = 0;
  for (int i = 0; i < m->params.count; i++) n += m->params.info[i].numel;
  return n;
}

/* Forward (+ backward with gy) of the synthetic setup; returns y (graph-owned). */
static Tensor *run(UNet *m, Graph *g, int B, const float *t_values, const int *labels, bool backward, Tensor **x_out) {
  const UNetConfig *c = &m->cfg;
  graph_reset(g);
  g->grad_enabled = backward;
  const int xs[4] = {B, c->in_channels, c->resolution, c->resolution};
  Tensor *x = graph_tensor(g, 4, xs), *t = graph_tensor(g, 1, &B);
  synthetic_fill(cpu_floats(x->data), x->numel, "input.x");
  for (int b = 0; b < B; b++) cpu_floats(t->data)[b] = t_values[b];
  x->requires_grad = backward;
  Tensor *y = unet_forward(m, g, x, t, labels);
  if (backward) {
    float *gy = cpu_floats(graph_floats(g, y->numel));
    synthetic_fill(gy, y->numel, "input.gy");
    params_zero_grad(&m->params);
    graph_backward_from(g, y, cpu_mem(gy));
  }
  if (x_out) *x_out = x;
  return y;
}

static void compare_fixture_tensor(const SafeTensors *st, Graph *g, const char *name, const float *got, size_t n,
                                   const char *what) {
  Tensor *want = fixture_tensor(g, st, name);
  EXPECT(want != NULL, "fixture lacks %s", name);
  if (!want) return;
  EXPECT(want->numel == n, "%s: %zu elements, fixture has %zu", what, n, want->numel);
  if (want->numel == n) expect_close(what, got, cpu_floats(want->data), n, UNET_TOL);
}

static void check_small(void) {
  SafeTensors st;
  load_fixture(&st, "unet_small.safetensors");
  const UNetConfig c = synthetic_small_unet_config(0);
  UNet m;
  unet_init(&m, &c, backend_cpu());
  synthetic_params(&m.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 22);
  const float t[2] = {3, 517};
  Tensor *x;
  Tensor *y = run(&m, &g, 2, t, NULL, true, &x);
  /* the synthetic input generator must agree with the script's */
  compare_fixture_tensor(&st, &g, "x", cpu_floats(x->data), x->numel, "small: input x (generator cross-check)");
  compare_fixture_tensor(&st, &g, "y", cpu_floats(y->data), y->numel, "small: output");
  compare_fixture_tensor(&st, &g, "grad.input", cpu_floats(x->grad), x->numel, "small: input gradient");
  int n_checked = 0;
  for (int i = 0; i < m.params.count; i++) {
    if (is_key_bias(m.params.info[i].name)) {
      expect_key_bias_negligible(&m.params, i);
      n_checked++;
      continue;
    }
    char name[PARAM_NAME_MAX + 8], what[PARAM_NAME_MAX + 32];
    snprintf(name, sizeof name, "grad.%s", m.params.info[i].name);
    snprintf(what, sizeof what, "small: grad %s", m.params.info[i].name);
    compare_fixture_tensor(&st, &g, name, cpu_floats(params_tensor(&m.params, i)->grad), m.params.info[i].numel, what);
    n_checked++;
  }
  EXPECT(n_checked == m.params.count, "checked %d of %d gradients", n_checked, m.params.count);

  /* Grad off, each block's intermediates are dropped (graph_keep_only): same output, less memory. */
  const size_t n_out = y->numel, used_with_grad = g.arena.used_total;
  float *y_grad_on = xmalloc(n_out * sizeof(float));
  memcpy(y_grad_on, y->data, n_out * sizeof(float));
  Tensor *y_off = run(&m, &g, 2, t, NULL, false, NULL);
  EXPECT(y_off->numel == n_out && !memcmp(y_off->data, y_grad_on, n_out * sizeof(float)),
         "small: grad-off output differs from the recorded forward");
  EXPECT(g.arena.used_total * 3 < used_with_grad, "small: grad-off forward keeps %zu of %zu arena bytes",
         g.arena.used_total, used_with_grad);
  free(y_grad_on);
  graph_free(&g);
  unet_free(&m);
  st_free(&st);
}

static void check_small_conditional(void) {
  SafeTensors st;
  load_fixture(&st, "unet_small_cond.safetensors");
  const UNetConfig c = synthetic_small_unet_config(10);
  UNet m;
  unet_init(&m, &c, backend_cpu());
  synthetic_params(&m.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 22);
  const float t[2] = {3, 517};
  const int labels[2] = {3, 7};
  Tensor *y = run(&m, &g, 2, t, labels, true, NULL);
  compare_fixture_tensor(&st, &g, "y", cpu_floats(y->data), y->numel, "conditional: output");
  const int ce = params_find(&m.params, "class_embedding.weight"), ci = params_find(&m.params, "conv_in.weight");
  compare_fixture_tensor(&st, &g, "grad.class_embedding.weight", cpu_floats(params_tensor(&m.params, ce)->grad),
                         m.params.info[ce].numel, "conditional: grad class_embedding.weight");
  compare_fixture_tensor(&st, &g, "grad.conv_in.weight", cpu_floats(params_tensor(&m.params, ci)->grad), m.params.info[ci].numel,
                         "conditional: grad conv_in.weight");
  graph_free(&g);
  unet_free(&m);
  st_free(&st);
}

static void check_cifar10(void) {
  SafeTensors st;
  load_fixture(&st, "unet_cifar10.safetensors");
  UNetConfig c;
  unet_config_default(&c);
  c.dropout = 0.0;
  UNet m;
  unet_init(&m, &c, backend_cpu());
  EXPECT(count_params(&m) == 35746307, "CIFAR-10 DDPM U-Net has %zu parameters, expected 35,746,307", count_params(&m));
  synthetic_params(&m.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 26);
  const float t[1] = {517};
  Tensor *y = run(&m, &g, 1, t, NULL, true, NULL);
  compare_fixture_tensor(&st, &g, "y", cpu_floats(y->data), y->numel, "cifar10: output");
  float *got = malloc(2 * (size_t)m.params.count * sizeof(float)), *want = got + m.params.count;
  float *probe = malloc(m.params.total * sizeof(float));
  char err[128];
  for (int i = 0; i < m.params.count; i++) {
    const ParamInfo *pi = &m.params.info[i];
    const float *gr = cpu_floats(params_tensor(&m.params, i)->grad);
    if (is_key_bias(pi->name)) {
      expect_key_bias_negligible(&m.params, i);
      continue;
    }
    char name[PARAM_NAME_MAX + 16];
    snprintf(name, sizeof name, "probe.%s", pi->name);
    synthetic_fill(probe, pi->numel, name);
    double norm = 0, dot = 0;
    for (size_t k = 0; k < pi->numel; k++) norm += (double)gr[k] * gr[k], dot += (double)gr[k] * probe[k];
    got[i] = (float)sqrt(norm);
    snprintf(name, sizeof name, "gradnorm.%s", pi->name);
    const StTensor *ref = st_find(&st, name);
    EXPECT(ref && st_tensor_to_f32(ref, &want[i], err, sizeof err) == 0, "fixture lacks %s", name);
    expect_close(name, &got[i], &want[i], 1, UNET_TOL);
    snprintf(name, sizeof name, "graddot.%s", pi->name);
    ref = st_find(&st, name);
    float dot_want = 0, dot_got = (float)dot;
    EXPECT(ref && st_tensor_to_f32(ref, &dot_want, err, sizeof err) == 0, "fixture lacks %s", name);
    /* a projection can be near zero: tolerance relative to the gradient's norm */
    EXPECT(fabs(dot_got - dot_want) <= UNET_TOL * (got[i] * sqrt((double)pi->numel) + 1e-12), "%s: got %g want %g", name,
           dot_got, dot_want);
  }
  free(got);
  free(probe);
  graph_free(&g);
  unet_free(&m);
  st_free(&st);
}

/* Central differences of L = sum(y * gy) for sampled parameter and input elements. */
static void check_finite_differences(void) {
  UNetConfig c = synthetic_small_unet_config(0);
  c.resolution = 8;
  c.ch = 16;
  c.groups = 8;
  c.attn_resolutions[0] = 4;
  UNet m;
  unet_init(&m, &c, backend_cpu());
  synthetic_params(&m.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 22);
  const float t[2] = {3, 517};
  Tensor *x;
  Tensor *y = run(&m, &g, 2, t, NULL, true, &x);
  const size_t ny = y->numel, nx = x->numel;
  float *gy = malloc(ny * sizeof(float)), *xg = malloc(nx * sizeof(float)), *pg = malloc(m.params.total * sizeof(float));
  synthetic_fill(gy, ny, "input.gy");
  memcpy(xg, x->grad, nx * sizeof(float));
  memcpy(pg, m.params.grad, m.params.total * sizeof(float));
  int checked = 0, bad = 0;
  for (int i = 0; i < m.params.count; i += 3) { /* every third tensor, two elements each */
    const ParamInfo *pi = &m.params.info[i];
    for (int e = 0; e < 2; e++) {
      const size_t k = pi->offset + (e * 7919 + i * 31) % pi->numel;
      const float orig = cpu_floats(m.params.data)[k], h = 1e-2f * fmaxf(1.0f, fabsf(orig));
      double l[2];
      for (int s = 0; s < 2; s++) {
        cpu_floats(m.params.data)[k] = orig + (s ? -h : h);
        Tensor *yy = run(&m, &g, 2, t, NULL, false, NULL);
        l[s] = 0;
        for (size_t q = 0; q < ny; q++) l[s] += (double)cpu_floats(yy->data)[q] * gy[q];
      }
      cpu_floats(m.params.data)[k] = orig;
      const double num = (l[0] - l[1]) / (2.0 * h), ana = pg[k];
      checked++;
      if (fabs(num - ana) > 2e-3 + 2e-2 * fmax(fabs(num), fabs(ana))) {
        bad++;
        fprintf(stderr, "  finite difference %s[%zu]: analytic %.6g numeric %.6g\n", pi->name, k - pi->offset, ana, num);
      }
    }
  }
  EXPECT(bad == 0, "%d of %d sampled parameter gradients disagree with finite differences", bad, checked);
  printf("unet: %d parameter elements checked by finite differences\n", checked);
  free(gy), free(xg), free(pg);
  graph_free(&g);
  unet_free(&m);
}

static void check_batch_independence(void) {
  const UNetConfig c = synthetic_small_unet_config(0);
  UNet m;
  unet_init(&m, &c, backend_cpu());
  synthetic_params(&m.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 22);
  const float t[2] = {3, 517};
  Tensor *y2 = run(&m, &g, 2, t, NULL, true, NULL);
  const size_t per = y2->numel / 2;
  float *both = malloc(y2->numel * sizeof(float));
  memcpy(both, y2->data, y2->numel * sizeof(float));
  Tensor *y1 = run(&m, &g, 1, t, NULL, false, NULL); /* image 0 alone, grad mode off */
  expect_close("batch of 1 vs first image of batch of 2 (grad off vs on)", cpu_floats(y1->data), both, per, 1e-6);
  free(both);
  graph_free(&g);
  unet_free(&m);
}

/* The noise-conditional classifier (model.classifier) against ADM's EncoderUNetModel with the attention
 * pool, restated in PyTorch: logits, the input gradient and the head's and conv_in's gradients. */
static void check_classifier(void) {
  SafeTensors st;
  load_fixture(&st, "unet_classifier.safetensors");
  UNetConfig c = synthetic_small_unet_config(5);
  c.ch_mult[1] = 8;
  c.classifier = true;
  UNet m;
  unet_init(&m, &c, backend_cpu());
  EXPECT(unet_pool_heads(&c) == 2, "a 128-channel pool has %d heads, not ADM's 2 of 64", unet_pool_heads(&c));
  synthetic_params(&m.params);
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 22);
  const float t[2] = {3, 517};
  Tensor *x;
  Tensor *y = run(&m, &g, 2, t, NULL, true, &x);
  EXPECT(y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 5, "classifier: logits of shape (2, 5)");
  compare_fixture_tensor(&st, &g, "y", cpu_floats(y->data), y->numel, "classifier: logits");
  compare_fixture_tensor(&st, &g, "grad.input", cpu_floats(x->grad), x->numel, "classifier: input gradient");
  int n_checked = 0;
  for (int i = 0; i < m.params.count; i++) {
    const char *name = m.params.info[i].name;
    if (strncmp(name, "classifier_head.", 16) && strncmp(name, "conv_in.", 8)) continue;
    char fx[PARAM_NAME_MAX + 8], what[PARAM_NAME_MAX + 32];
    snprintf(fx, sizeof fx, "grad.%s", name);
    snprintf(what, sizeof what, "classifier: grad %s", name);
    compare_fixture_tensor(&st, &g, fx, cpu_floats(params_tensor(&m.params, i)->grad), m.params.info[i].numel, what);
    n_checked++;
  }
  EXPECT(n_checked == 9, "classifier: checked %d head and conv_in gradients, not 9", n_checked);
  graph_free(&g);
  unet_free(&m);
  st_free(&st);
}

int main(void) {
  check_classifier();
  UNetConfig c;
  unet_config_default(&c);
  UNet m;
  unet_init(&m, &c, backend_cpu());
  EXPECT(count_params(&m) == 35746307, "CIFAR-10 DDPM: %zu parameters", count_params(&m));
  unet_free(&m);
  check_batch_independence();
  check_finite_differences();
  check_small();
  check_small_conditional();
  check_cifar10();
  return test_report("unet");
}
