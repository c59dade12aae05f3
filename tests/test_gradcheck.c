/* test_gradcheck.c - finite-difference check of every backward kernel, w.r.t. inputs and params.
 *
 * For L = sum(y * gy) with random gy, each checked input element gets the central difference
 * (L(x + h) - L(x - h)) / 2h, h = 1e-2, with L accumulated in double from the float32 forward.
 * Agreement: |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|, |numeric|) per element. The
 * float32 forward limits the numeric estimate to ~1e-4 absolute accuracy; a wrong gradient is
 * off by O(1). Inputs of non-smooth ops (max_pool) are spaced so no kink is within h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/functions.h"
#include "core/gaussian.h"
#include "core/rng.h"
#include "test_util.h"

#define MAX_IN 6
#define FD_H 1e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

typedef Tensor *(*OpFn)(Graph *g, Tensor **in);

typedef enum { INIT_NORMAL, INIT_SPACED, INIT_POSITIVE } InitKind;

typedef struct {
  const char *name;
  OpFn fn;
  int n_in;
  int shape[MAX_IN][5]; /* ndim, dims... */
  bool checked[MAX_IN]; /* inputs whose gradient is checked (others get none) */
  InitKind init[MAX_IN];
} GradCase;

/* ---- op adaptors ---- */
static Tensor *f_conv_3x3(Graph *g, Tensor **in) { return ag_conv2d(g, in[0], in[1], in[2], 1, 1, 1, 1, 1, 1); }
static Tensor *f_conv_same_s2(Graph *g, Tensor **in) { return ag_conv2d(g, in[0], in[1], in[2], 2, 2, 0, 1, 0, 1); }
static Tensor *f_conv_1x7(Graph *g, Tensor **in) { return ag_conv2d(g, in[0], in[1], NULL, 1, 1, 0, 0, 3, 3); }
static Tensor *f_conv_1x1(Graph *g, Tensor **in) { return ag_conv2d(g, in[0], in[1], in[2], 1, 1, 0, 0, 0, 0); }
static Tensor *f_conv_s2_p0(Graph *g, Tensor **in) { return ag_conv2d(g, in[0], in[1], in[2], 2, 2, 0, 0, 0, 0); }
static Tensor *f_linear(Graph *g, Tensor **in) { return ag_linear(g, in[0], in[1], in[2]); }
static Tensor *f_group_norm(Graph *g, Tensor **in) { return ag_group_norm(g, in[0], in[1], in[2], 2, 1e-5f); }
static Tensor *f_silu(Graph *g, Tensor **in) { return ag_silu(g, in[0]); }
static Tensor *f_group_norm_silu(Graph *g, Tensor **in) { return ag_group_norm_silu(g, in[0], in[1], in[2], 2, 1e-5f); }
static Tensor *f_group_norm_then_silu(Graph *g, Tensor **in) {
  return ag_silu(g, ag_group_norm(g, in[0], in[1], in[2], 2, 1e-5f));
}
static Tensor *f_softmax(Graph *g, Tensor **in) { return ag_softmax(g, in[0]); }
static Tensor *f_attention(Graph *g, Tensor **in) { return ag_attention(g, in[0], in[1], in[2]); }
static Tensor *f_upsample(Graph *g, Tensor **in) { return ag_upsample_nearest2x(g, in[0]); }
static Tensor *f_avg_excl(Graph *g, Tensor **in) { return ag_avg_pool2d(g, in[0], 3, 1, 1, false); }
static Tensor *f_avg_incl(Graph *g, Tensor **in) { return ag_avg_pool2d(g, in[0], 3, 2, 1, true); }
static Tensor *f_max_pool(Graph *g, Tensor **in) { return ag_max_pool2d(g, in[0], 3, 2, 1); }
static Tensor *f_gap(Graph *g, Tensor **in) { return ag_global_avg_pool(g, in[0]); }
static Tensor *f_concat(Graph *g, Tensor **in) { return ag_concat_channels(g, in[0], in[1]); }
static Tensor *f_add(Graph *g, Tensor **in) { return ag_add(g, in[0], in[1]); }
static Tensor *f_mul(Graph *g, Tensor **in) { return ag_mul(g, in[0], in[1]); }
static Tensor *f_scale(Graph *g, Tensor **in) { return ag_scale(g, in[0], -1.7f); }
static Tensor *f_add_channel(Graph *g, Tensor **in) { return ag_add_channel(g, in[0], in[1]); }
static Tensor *f_dropout(Graph *g, Tensor **in) { return ag_dropout(g, in[0], 0.3f); }
static Tensor *f_embedding(Graph *g, Tensor **in) {
  static const int labels[3] = {2, 0, 2}; /* a repeated label: its row must get both gradients */
  return ag_embedding_lookup(g, in[0], labels, 3);
}
static Tensor *f_mse(Graph *g, Tensor **in) { return ag_mse(g, in[0], in[1]); }
static Tensor *f_wmse(Graph *g, Tensor **in) { return ag_weighted_mse(g, in[0], in[1], in[2]); }
static Tensor *f_channel_slice(Graph *g, Tensor **in) { return ag_channel_slice(g, in[0], 1, 2); }
static Tensor *f_pool_tokens(Graph *g, Tensor **in) { return ag_pool_tokens(g, in[0], in[1]); }
static Tensor *f_first_token(Graph *g, Tensor **in) { return ag_first_token(g, in[0]); }
static Tensor *f_cross_entropy(Graph *g, Tensor **in) {
  static const int labels[4] = {2, 0, 4, 2};
  return ag_cross_entropy(g, in[0], labels);
}
/* The learned-variance bound with both gradients: sample 0 a KL term, sample 1 the decoder, at
 * coefficients of the sizes a DDPM has (log variances -5 .. -2). */
static Tensor *f_vlb(Graph *g, Tensor **in) {
  static const float coef[2 * VLB_COEFS] = {0.5f, -0.4f, 0.3f, -3.0f, -3.0f, -2.0f, 0.0f, 1.5f,
                                            1.0f, -1.0f, 0.1f, -5.0f, -5.0f, -4.6f, 1.0f, 0.7f};
  const int shape[2] = {2, VLB_COEFS};
  return ag_vlb_loss(g, in[0], in[1], in[2], graph_tensor_upload(g, 2, shape, coef), true, NULL);
}
static Tensor *f_reshape(Graph *g, Tensor **in) {
  const int s[2] = {in[0]->shape[0], (int)(in[0]->numel / in[0]->shape[0])};
  return ag_silu(g, ag_reshape(g, in[0], 2, s));
}
/* A ResBlock-shaped composite: GroupNorm -> SiLU -> conv3x3 + time-embedding projection, with a
 * residual connection, so the input fans out and gradients must add up. */
static Tensor *f_resblock(Graph *g, Tensor **in) {
  Tensor *h = ag_conv2d(g, ag_silu(g, ag_group_norm(g, in[0], in[1], in[2], 2, 1e-6f)), in[3], NULL, 1, 1, 1, 1, 1, 1);
  h = ag_add_channel(g, h, ag_linear(g, ag_silu(g, in[4]), in[5], NULL));
  return ag_add(g, in[0], h);
}
/* Attention block: q, k, v as 1x1 convolutions of the same input, then a residual. */
static Tensor *f_attn_block(Graph *g, Tensor **in) {
  Tensor *q = ag_conv2d(g, in[0], in[1], NULL, 1, 1, 0, 0, 0, 0);
  Tensor *k = ag_conv2d(g, in[0], in[2], NULL, 1, 1, 0, 0, 0, 0);
  Tensor *v = ag_conv2d(g, in[0], in[3], NULL, 1, 1, 0, 0, 0, 0);
  return ag_add(g, in[0], ag_attention(g, q, k, v));
}

#define S4(a, b, c, d) {4, a, b, c, d}
#define S2(a, b) {2, a, b}
#define S1(a) {1, a}
#define ALL {true, true, true, true, true, true}

static const GradCase CASES[] = {
    {"conv2d 3x3 pad 1", f_conv_3x3, 3, {S4(2, 3, 5, 5), S4(4, 3, 3, 3), S1(4)}, ALL, {0}},
    {"conv2d 3x3 stride 2 TF-SAME", f_conv_same_s2, 3, {S4(2, 2, 6, 6), S4(3, 2, 3, 3), S1(3)}, ALL, {0}},
    {"conv2d 1x7 no bias", f_conv_1x7, 2, {S4(1, 2, 3, 8), S4(3, 2, 1, 7)}, ALL, {0}},
    {"conv2d 1x1", f_conv_1x1, 3, {S4(2, 4, 3, 3), S4(5, 4, 1, 1), S1(5)}, ALL, {0}},
    {"conv2d 3x3 stride 2 pad 0", f_conv_s2_p0, 3, {S4(1, 2, 7, 7), S4(2, 2, 3, 3), S1(2)}, ALL, {0}},
    {"linear", f_linear, 3, {S2(3, 5), S2(4, 5), S1(4)}, ALL, {0}},
    {"group_norm", f_group_norm, 3, {S4(2, 4, 3, 3), S1(4), S1(4)}, ALL, {0}},
    {"silu", f_silu, 1, {S4(2, 3, 2, 2)}, ALL, {0}},
    {"group_norm_silu (fused)", f_group_norm_silu, 3, {S4(2, 4, 3, 3), S1(4), S1(4)}, ALL, {0}},
    {"softmax", f_softmax, 1, {S2(3, 7)}, ALL, {0}},
    {"attention", f_attention, 3, {S4(2, 4, 2, 3), S4(2, 4, 2, 3), S4(2, 4, 2, 3)}, ALL, {0}},
    {"upsample_nearest2x", f_upsample, 1, {S4(1, 2, 3, 2)}, ALL, {0}},
    {"avg_pool2d k3 s1 p1 exclude pad", f_avg_excl, 1, {S4(1, 2, 4, 5)}, ALL, {0}},
    {"avg_pool2d k3 s2 p1 include pad", f_avg_incl, 1, {S4(1, 2, 5, 5)}, ALL, {0}},
    {"max_pool2d k3 s2 p1", f_max_pool, 1, {S4(1, 2, 5, 6)}, ALL, {INIT_SPACED}},
    {"global_avg_pool", f_gap, 1, {S4(2, 3, 2, 3)}, ALL, {0}},
    {"concat", f_concat, 2, {S4(2, 2, 2, 2), S4(2, 3, 2, 2)}, ALL, {0}},
    {"add", f_add, 2, {S4(2, 3, 2, 2), S4(2, 3, 2, 2)}, ALL, {0}},
    {"mul", f_mul, 2, {S4(2, 3, 2, 2), S4(2, 3, 2, 2)}, ALL, {0}},
    {"scale", f_scale, 1, {S4(2, 3, 2, 2)}, ALL, {0}},
    {"add_channel", f_add_channel, 2, {S4(2, 3, 2, 2), S2(2, 3)}, ALL, {0}},
    {"dropout p=0.3", f_dropout, 1, {S4(2, 3, 4, 4)}, ALL, {0}},
    {"embedding_lookup", f_embedding, 1, {S2(4, 5)}, ALL, {0}},
    {"mse", f_mse, 2, {S4(2, 2, 3, 3), S4(2, 2, 3, 3)}, ALL, {0}},
    {"weighted_mse", f_wmse, 3, {S4(3, 2, 2, 2), S4(3, 2, 2, 2), S1(3)}, {true, true, false}, {0, 0, INIT_POSITIVE}},
    {"channel_slice", f_channel_slice, 1, {S4(2, 4, 2, 2)}, ALL, {0}},
    {"pool_tokens", f_pool_tokens, 2, {S4(2, 3, 2, 3), S2(3, 7)}, ALL, {0}},
    {"first_token", f_first_token, 1, {S4(2, 3, 1, 5)}, ALL, {0}},
    {"cross_entropy", f_cross_entropy, 1, {S2(4, 5)}, ALL, {0}},
    {"vlb (KL and decoder terms)", f_vlb, 3, {S4(2, 4, 3, 3), S4(2, 2, 3, 3), S4(2, 2, 3, 3)}, {true, false, false}, {0}},
    {"reshape", f_reshape, 1, {S4(2, 3, 2, 2)}, ALL, {0}},
    {"resblock composite", f_resblock, 6, {S4(2, 4, 4, 4), S1(4), S1(4), S4(4, 4, 3, 3), S2(2, 6), S2(4, 6)}, ALL, {0}},
    {"attention block composite", f_attn_block, 4, {S4(2, 4, 3, 3), S4(4, 4, 1, 1), S4(4, 4, 1, 1), S4(4, 4, 1, 1)}, ALL, {0}},
};

static size_t shape_numel(const int *s) {
  size_t n = 1;
  for (int i = 0; i < s[0]; i++) n *= (size_t)s[1 + i];
  return n;
}

static void init_input(float *x, size_t n, InitKind kind, uint64_t stream) {
  rng_fill_normal(x, n, 1234, stream, 0);
  if (kind == INIT_POSITIVE) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f + fabsf(x[i]);
  } else if (kind == INIT_SPACED) {
    /* distinct values k*0.1 + 0.05 in random order: no ties and no zero within FD_H */
    int *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = (int)i;
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)(rng_uniform(99, stream, i) * (float)(i + 1));
      int t = order[i];
      order[i] = order[j], order[j] = t;
    }
    for (size_t i = 0; i < n; i++) x[i] = ((float)order[i] - (float)(n / 2)) * 0.1f + 0.05f;
    free(order);
  }
}

/* Fresh graph, inputs wrapped around bufs (in[] receives the input tensors), output returned. */
static Tensor *forward(Graph *g, const GradCase *c, float **bufs, Tensor **in, bool with_grad) {
  graph_reset(g);
  g->grad_enabled = with_grad;
  for (int i = 0; i < c->n_in; i++)
    in[i] = graph_wrap(g, cpu_mem(bufs[i]), c->shape[i][0], &c->shape[i][1], with_grad && c->checked[i]);
  return c->fn(g, in);
}

static double loss_of(const Tensor *y, const float *gy) {
  double s = 0.0;
  for (size_t i = 0; i < y->numel; i++) s += (double)cpu_floats(y->data)[i] * gy[i];
  return s;
}

static void check_case_step(Graph *g, const GradCase *c, uint64_t case_index, float h) {
  float *bufs[MAX_IN] = {0};
  Tensor *in[MAX_IN];
  for (int i = 0; i < c->n_in; i++) {
    const size_t n = shape_numel(c->shape[i]);
    bufs[i] = malloc(n * sizeof(float));
    init_input(bufs[i], n, c->init[i], case_index * 16 + (uint64_t)i);
  }
  Tensor *y = forward(g, c, bufs, in, true);
  const size_t ny = y->numel;
  float *gy = malloc(ny * sizeof(float));
  rng_fill_normal(gy, ny, 77, case_index, 0);
  graph_backward_from(g, y, cpu_mem(gy));
  float *analytic[MAX_IN] = {0};
  for (int i = 0; i < c->n_in; i++) {
    if (!c->checked[i]) continue;
    const Tensor *t = in[i];
    const size_t n = shape_numel(c->shape[i]);
    analytic[i] = calloc(n, sizeof(float));
    if (t->grad) memcpy(analytic[i], t->grad, n * sizeof(float));
  }
  for (int i = 0; i < c->n_in; i++) {
    if (!c->checked[i]) continue;
    const size_t n = shape_numel(c->shape[i]);
    double worst = 0.0, err2 = 0.0, ref2 = 0.0;
    size_t worst_j = 0;
    double worst_a = 0, worst_n = 0;
    for (size_t j = 0; j < n; j++) {
      const float orig = bufs[i][j];
      bufs[i][j] = orig + h;
      const double lp = loss_of(forward(g, c, bufs, in, false), gy);
      bufs[i][j] = orig - h;
      const double lm = loss_of(forward(g, c, bufs, in, false), gy);
      bufs[i][j] = orig;
      const double h2 = (double)(orig + h) - (double)(orig - h);
      const double num = (lp - lm) / h2, ana = analytic[i][j];
      const double ratio = fabs(ana - num) / (FD_ATOL + FD_RTOL * fmax(fabs(ana), fabs(num)));
      err2 += (ana - num) * (ana - num);
      ref2 += num * num;
      if (ratio > worst) worst = ratio, worst_j = j, worst_a = ana, worst_n = num;
    }
    EXPECT(worst <= 1.0, "%s: input %d element %zu: analytic %.6g numeric %.6g", c->name, i, worst_j, worst_a,
           worst_n);
    EXPECT(ref2 > 0.0, "%s: input %d: numeric gradient is identically zero (test would be vacuous)", c->name, i);
    EXPECT(sqrt(err2) <= FD_RTOL * sqrt(ref2) + FD_ATOL, "%s: input %d: relative error norm %.3g", c->name, i,
           sqrt(err2 / (ref2 + 1e-30)));
    free(analytic[i]);
  }
  g->grad_enabled = true;
  for (int i = 0; i < c->n_in; i++) free(bufs[i]);
  free(gy);
}

static void check_case(Graph *g, const GradCase *c, uint64_t case_index) { check_case_step(g, c, case_index, FD_H); }

/* 16x16 and up: Winograd F(4x4,3x3) forward and input gradient, F(3x3,4x4) weight gradient, with
 * partial tiles on both edges of a non-square image. L is linear in each input, so the central
 * difference has no truncation error at any step: a step of 0.5 keeps the float32 rounding of the
 * 1836 outputs below the tolerance (F(4x4)'s transforms round ~10x more than the direct sum, about
 * 2e-6 relative, which at h = 1e-2 puts ~2e-3 of noise into the estimate). */
static void check_winograd_4x4_tiles(Graph *g) {
  static const GradCase c = {"conv2d 3x3 pad 1 (4x4 tiles)", f_conv_3x3, 3, {S4(2, 2, 17, 18), S4(3, 2, 3, 3), S1(3)},
                             ALL, {0}};
  check_case_step(g, &c, 100, 0.5f);
}

/* The fused GroupNorm + SiLU equals the two ops in sequence: output and all gradients. */
static void check_fused_group_norm_silu(Graph *g) {
  static const GradCase fused = {"fused", f_group_norm_silu, 3, {S4(3, 8, 5, 4), S1(8), S1(8)}, ALL, {0}};
  static const GradCase pair = {"pair", f_group_norm_then_silu, 3, {S4(3, 8, 5, 4), S1(8), S1(8)}, ALL, {0}};
  const GradCase *cases[2] = {&fused, &pair};
  float *bufs[3], *results[2][4];
  for (int i = 0; i < 3; i++) {
    bufs[i] = malloc(shape_numel(fused.shape[i]) * sizeof(float));
    init_input(bufs[i], shape_numel(fused.shape[i]), 0, 500 + (uint64_t)i);
  }
  const size_t ny = shape_numel(fused.shape[0]);
  float *gy = malloc(ny * sizeof(float));
  rng_fill_normal(gy, ny, 78, 0, 0);
  for (int k = 0; k < 2; k++) {
    Tensor *in[3];
    Tensor *y = forward(g, cases[k], bufs, in, true);
    graph_backward_from(g, y, cpu_mem(gy));
    results[k][0] = malloc(ny * sizeof(float));
    memcpy(results[k][0], y->data, ny * sizeof(float));
    for (int i = 0; i < 3; i++) {
      results[k][1 + i] = malloc(in[i]->numel * sizeof(float));
      memcpy(results[k][1 + i], in[i]->grad, in[i]->numel * sizeof(float));
    }
  }
  static const char *what[4] = {"output", "dx", "dgamma", "dbeta"};
  for (int r = 0; r < 4; r++) {
    const size_t n = r == 0 ? ny : shape_numel(fused.shape[r - 1]);
    double worst = 0.0;
    for (size_t j = 0; j < n; j++)
      worst = fmax(worst, fabs(results[0][r][j] - results[1][r][j]) / (1e-6 + fabs(results[1][r][j])));
    EXPECT(worst < 1e-4, "group_norm_silu fused vs pair: %s differs (relative %.3g)", what[r], worst);
    free(results[0][r]), free(results[1][r]);
  }
  for (int i = 0; i < 3; i++) free(bufs[i]);
  free(gy);
}

int main(void) {
  Graph g;
  graph_init(&g, backend_cpu(), 1 << 20);
  g.training = true; /* dropout active, with a fixed mask per forward (stream 0, same seed) */
  g.dropout_seed = 42;
  const int n = (int)(sizeof CASES / sizeof CASES[0]);
  for (int i = 0; i < n; i++) check_case(&g, &CASES[i], (uint64_t)i);
  check_winograd_4x4_tiles(&g);
  check_fused_group_norm_silu(&g);
  printf("gradcheck: %d cases\n", n);
  graph_free(&g);
  return test_report("gradcheck");
}
