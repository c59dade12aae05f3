/* cpu.c - the CPU backend: host memory and the kernels of ops/, unchanged.
 *
 * BackendMem addresses are host pointers here, so each op is the ops/ kernel with its pointers
 * converted back (F, CF, I). Memory is 64-byte aligned (the AVX-512 kernels' loads), and memset /
 * copy of large buffers are threaded (one core's memset leaves the others idle).
 *
 * DIFFUSE_CPU_OPAQUE=1 (for tests) hands out every address shifted by 2^62 off the real one, as a
 * device's memory would be unreadable from the host: code above the seam that reads or writes
 * tensor memory behind the backend's back (a memcpy, a cast) then faults at once, while everything
 * that goes through the op table and upload/download runs as usual. .ci/run runs the end-to-end CLI
 * test and test_backend_ops that way.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "bf16_weights.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv2d.h"
#include "ops/conv2d_bf16.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gemm.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/pool.h"
#include "ops/resample.h"

/* 0, or 2^62 under DIFFUSE_CPU_OPAQUE=1: the distance between the addresses handed out and the host's. */
static uintptr_t g_shift;

static void *host_address(const BackendMem *p) { return p ? (void *)((uintptr_t)p - g_shift) : NULL; }

#define F(p) ((float *)host_address(p))
#define CF(p) ((const float *)host_address(p))
#define I(p) ((int *)host_address(p))
#define CI(p) ((const int *)host_address(p))

/* ---- memory ---- */

static BackendMem *cpu_alloc(const Backend *be, size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) != 0) return NULL;
  return (BackendMem *)((uintptr_t)p + g_shift);
}
static void cpu_free(const Backend *be, BackendMem *p) { free(host_address(p)); }
static void cpu_upload(const Backend *be, BackendMem *dst, const void *src, size_t bytes) {
  if (bytes) memcpy(host_address(dst), src, bytes);
}
static void cpu_download(const Backend *be, void *dst, const BackendMem *src, size_t bytes) {
  if (bytes) memcpy(dst, host_address(src), bytes);
}
static void cpu_memset(const Backend *be, BackendMem *dst, int byte, size_t bytes) {
  if (byte == 0 && bytes % sizeof(float) == 0)
    zero_floats(F(dst), bytes / sizeof(float));
  else if (bytes)
    memset(host_address(dst), byte, bytes);
}
static void cpu_copy(const Backend *be, BackendMem *dst, const BackendMem *src, size_t bytes) {
  if (bytes) memmove(host_address(dst), host_address(src), bytes);
}
static const char *cpu_describe(const Backend *be) { return gemm_kernel_name(); }
static void cpu_set_threads(const Backend *be, int threads) { gemm_set_threads(threads); }

/* ---- kernels ---- */

static size_t cpu_conv2d_work_floats(const Backend *be, const Conv2dGeom *g) { return conv2d_work_floats(g); }
static void cpu_conv2d_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                               const BackendMem *bias, const Conv2dGeom *g, BackendMem *work) {
  conv2d_forward(F(y), CF(x), CF(w), CF(bias), g, F(work));
}
static void cpu_conv2d_backward(const Backend *be, BackendMem *dx, BackendMem *dw, BackendMem *dbias,
                                const BackendMem *dy, const BackendMem *x, const BackendMem *w, const Conv2dGeom *g,
                                BackendMem *work) {
  conv2d_backward(F(dx), F(dw), F(dbias), CF(dy), CF(x), CF(w), g, F(work));
}
static void cpu_gemm(const Backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const BackendMem *A,
                     int lda, const BackendMem *B, int ldb, float beta, BackendMem *C, int ldc) {
  gemm(ta, tb, M, N, K, alpha, CF(A), lda, CF(B), ldb, beta, F(C), ldc);
}
static void cpu_linear_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                               const BackendMem *b, int N, int in, int out) {
  linear_forward(F(y), CF(x), CF(w), CF(b), N, in, out);
}
static void cpu_linear_backward(const Backend *be, BackendMem *dx, BackendMem *dw, BackendMem *db,
                                const BackendMem *dy, const BackendMem *x, const BackendMem *w, int N, int in,
                                int out) {
  linear_backward(F(dx), F(dw), F(db), CF(dy), CF(x), CF(w), N, in, out);
}
static void cpu_group_norm_forward(const Backend *be, BackendMem *y, BackendMem *mean, BackendMem *rstd,
                                   const BackendMem *x, const BackendMem *gamma, const BackendMem *beta, int B, int C,
                                   int HW, int G, float eps) {
  group_norm_forward(F(y), F(mean), F(rstd), CF(x), CF(gamma), CF(beta), B, C, HW, G, eps);
}
static void cpu_group_norm_silu_forward(const Backend *be, BackendMem *y, BackendMem *h, BackendMem *mean,
                                        BackendMem *rstd, const BackendMem *x, const BackendMem *gamma,
                                        const BackendMem *beta, int B, int C, int HW, int G, float eps) {
  group_norm_silu_forward(F(y), F(h), F(mean), F(rstd), CF(x), CF(gamma), CF(beta), B, C, HW, G, eps);
}
static void cpu_group_norm_backward(const Backend *be, BackendMem *dx, BackendMem *dgamma, BackendMem *dbeta,
                                    const BackendMem *dy, const BackendMem *x, const BackendMem *mean,
                                    const BackendMem *rstd, const BackendMem *gamma, int B, int C, int HW, int G) {
  group_norm_backward(F(dx), F(dgamma), F(dbeta), CF(dy), CF(x), CF(mean), CF(rstd), CF(gamma), B, C, HW, G);
}
static void cpu_attention_forward(const Backend *be, BackendMem *y, BackendMem *probs, const BackendMem *q,
                                  const BackendMem *k, const BackendMem *v, int B, int C, int N) {
  attention_forward(F(y), F(probs), CF(q), CF(k), CF(v), B, C, N);
}
static size_t cpu_attention_backward_work_floats(const Backend *be, int N) { return attention_backward_work_floats(N); }
static void cpu_attention_backward(const Backend *be, BackendMem *dq, BackendMem *dk, BackendMem *dv,
                                   const BackendMem *dy, const BackendMem *probs, const BackendMem *q,
                                   const BackendMem *k, const BackendMem *v, int B, int C, int N, BackendMem *work) {
  attention_backward(F(dq), F(dk), F(dv), CF(dy), CF(probs), CF(q), CF(k), CF(v), B, C, N, F(work));
}
static void cpu_timestep_embedding_forward(const Backend *be, BackendMem *y, const BackendMem *t, int B, int dim) {
  timestep_embedding_forward(F(y), CF(t), B, dim);
}
static void cpu_embedding_lookup_forward(const Backend *be, BackendMem *y, const BackendMem *table,
                                         const BackendMem *labels, int B, int dim) {
  embedding_lookup_forward(F(y), CF(table), CI(labels), B, dim);
}
static void cpu_embedding_lookup_backward(const Backend *be, BackendMem *dtable, const BackendMem *dy,
                                          const BackendMem *labels, int B, int dim) {
  embedding_lookup_backward(F(dtable), CF(dy), CI(labels), B, dim);
}
static void cpu_silu_forward(const Backend *be, BackendMem *y, const BackendMem *x, size_t n) {
  silu_forward(F(y), CF(x), n);
}
static void cpu_silu_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *x, size_t n) {
  silu_backward(F(dx), CF(dy), CF(x), n);
}
static void cpu_silu_backward_overwrite(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *x,
                                        size_t n) {
  silu_backward_overwrite(F(dx), CF(dy), CF(x), n);
}
static void cpu_relu_forward(const Backend *be, BackendMem *y, const BackendMem *x, size_t n) {
  relu_forward(F(y), CF(x), n);
}
static void cpu_softmax_forward(const Backend *be, BackendMem *y, const BackendMem *x, int rows, int cols) {
  softmax_forward(F(y), CF(x), rows, cols);
}
static void cpu_softmax_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *y,
                                 int rows, int cols) {
  softmax_backward(F(dx), CF(dy), CF(y), rows, cols);
}
static void cpu_add_forward(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, size_t n) {
  add_forward(F(y), CF(a), CF(b), n);
}
static void cpu_mul_forward(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, size_t n) {
  mul_forward(F(y), CF(a), CF(b), n);
}
static void cpu_mul_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dy,
                             const BackendMem *a, const BackendMem *b, size_t n) {
  mul_backward(F(da), F(db), CF(dy), CF(a), CF(b), n);
}
static void cpu_scale_forward(const Backend *be, BackendMem *y, const BackendMem *x, float alpha, size_t n) {
  scale_forward(F(y), CF(x), alpha, n);
}
static void cpu_scale_shift(const Backend *be, BackendMem *y, const BackendMem *x, float alpha, float beta, size_t n) {
  scale_shift(F(y), CF(x), alpha, beta, n);
}
static void cpu_axpy_accumulate(const Backend *be, BackendMem *dx, const BackendMem *dy, float alpha, size_t n) {
  axpy_accumulate(F(dx), CF(dy), alpha, n);
}
static void cpu_axpby(const Backend *be, BackendMem *y, float a, const BackendMem *x, float b, const BackendMem *z,
                      size_t n) {
  axpby(F(y), a, CF(x), b, CF(z), n);
}
static void cpu_add_channel_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *v, int BC,
                                    int HW) {
  add_channel_forward(F(y), CF(x), CF(v), BC, HW);
}
static void cpu_add_channel_backward(const Backend *be, BackendMem *dv, const BackendMem *dy, int BC, int HW) {
  add_channel_backward(F(dv), CF(dy), BC, HW);
}
static void cpu_concat_channels_forward(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b,
                                        int B, int Ca, int Cb, int HW) {
  concat_channels_forward(F(y), CF(a), CF(b), B, Ca, Cb, HW);
}
static void cpu_channel_slice_forward(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int c0,
                                      int n, int HW) {
  channel_slice_forward(F(y), CF(x), B, C, c0, n, HW);
}
static void cpu_channel_slice_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int c0,
                                       int n, int HW) {
  channel_slice_backward(F(dx), CF(dy), B, C, c0, n, HW);
}
static void cpu_pool_tokens_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *pos, int B,
                                    int C, int HW) {
  pool_tokens_forward(F(y), CF(x), CF(pos), B, C, HW);
}
static void cpu_pool_tokens_backward(const Backend *be, BackendMem *dx, BackendMem *dpos, const BackendMem *dy, int B,
                                     int C, int HW) {
  pool_tokens_backward(F(dx), F(dpos), CF(dy), B, C, HW);
}
static void cpu_first_token_forward(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int N) {
  first_token_forward(F(y), CF(x), B, C, N);
}
static void cpu_first_token_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int N) {
  first_token_backward(F(dx), CF(dy), B, C, N);
}
static void cpu_concat_channels_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dy,
                                         int B, int Ca, int Cb, int HW) {
  concat_channels_backward(F(da), F(db), CF(dy), B, Ca, Cb, HW);
}
static void cpu_dropout_forward(const Backend *be, BackendMem *y, BackendMem *mask, const BackendMem *x, size_t n,
                                float p, uint64_t seed, uint64_t stream, uint64_t offset) {
  dropout_forward(F(y), (uint8_t *)host_address(mask), CF(x), n, p, seed, stream, offset);
}
static void cpu_dropout_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *mask,
                                 size_t n, float p) {
  dropout_backward(F(dx), CF(dy), (const uint8_t *)host_address(mask), n, p);
}
static void cpu_upsample_nearest2x_forward(const Backend *be, BackendMem *y, const BackendMem *x, int BC, int H,
                                           int W) {
  upsample_nearest2x_forward(F(y), CF(x), BC, H, W);
}
static void cpu_upsample_nearest2x_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int BC, int H,
                                            int W) {
  upsample_nearest2x_backward(F(dx), CF(dy), BC, H, W);
}
static void cpu_bilinear_resize_forward(const Backend *be, BackendMem *y, const BackendMem *x, int BC, int H, int W,
                                        int Ho, int Wo) {
  bilinear_resize_forward(F(y), CF(x), BC, H, W, Ho, Wo);
}
static void cpu_avg_pool2d_forward(const Backend *be, BackendMem *y, const BackendMem *x, const Pool2dGeom *g,
                                   bool count_include_pad) {
  avg_pool2d_forward(F(y), CF(x), g, count_include_pad);
}
static void cpu_avg_pool2d_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const Pool2dGeom *g,
                                    bool count_include_pad) {
  avg_pool2d_backward(F(dx), CF(dy), g, count_include_pad);
}
static void cpu_max_pool2d_forward(const Backend *be, BackendMem *y, BackendMem *argmax, const BackendMem *x,
                                   const Pool2dGeom *g) {
  max_pool2d_forward(F(y), I(argmax), CF(x), g);
}
static void cpu_max_pool2d_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *argmax,
                                    const Pool2dGeom *g) {
  max_pool2d_backward(F(dx), CF(dy), CI(argmax), g);
}
static void cpu_global_avg_pool_forward(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int HW) {
  global_avg_pool_forward(F(y), CF(x), B, C, HW);
}
static void cpu_global_avg_pool_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C,
                                         int HW) {
  global_avg_pool_backward(F(dx), CF(dy), B, C, HW);
}
static void cpu_mse_forward(const Backend *be, BackendMem *loss, const BackendMem *a, const BackendMem *b, size_t n) {
  *F(loss) = mse_forward(CF(a), CF(b), n);
}
static void cpu_mse_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dloss,
                             const BackendMem *a, const BackendMem *b, size_t n) {
  mse_backward(F(da), F(db), *CF(dloss), CF(a), CF(b), n);
}
static void cpu_weighted_mse_forward(const Backend *be, BackendMem *loss, const BackendMem *a, const BackendMem *b,
                                     const BackendMem *w, int B, size_t M) {
  *F(loss) = weighted_mse_forward(CF(a), CF(b), CF(w), B, M);
}
static void cpu_weighted_mse_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dloss,
                                      const BackendMem *a, const BackendMem *b, const BackendMem *w, int B, size_t M) {
  weighted_mse_backward(F(da), F(db), *CF(dloss), CF(a), CF(b), CF(w), B, M);
}
static void cpu_cross_entropy_forward(const Backend *be, BackendMem *loss, const BackendMem *logits,
                                      const BackendMem *labels, int B, int K) {
  *F(loss) = cross_entropy_forward(CF(logits), CI(labels), B, K);
}
static void cpu_cross_entropy_backward(const Backend *be, BackendMem *dlogits, const BackendMem *dloss,
                                       const BackendMem *logits, const BackendMem *labels, int B, int K) {
  cross_entropy_backward(F(dlogits), *CF(dloss), CF(logits), CI(labels), B, K);
}
static void cpu_vlb_forward(const Backend *be, BackendMem *loss, BackendMem *terms, const BackendMem *net,
                            const BackendMem *xt, const BackendMem *x0, const BackendMem *coef, int B, int C, int HW) {
  *F(loss) = vlb_forward(F(terms), CF(net), CF(xt), CF(x0), CF(coef), B, C, HW);
}
static void cpu_vlb_backward(const Backend *be, BackendMem *dnet, const BackendMem *dloss, const BackendMem *net,
                             const BackendMem *xt, const BackendMem *x0, const BackendMem *coef, int B, int C, int HW,
                             bool grad_mean) {
  vlb_backward(F(dnet), *CF(dloss), CF(net), CF(xt), CF(x0), CF(coef), B, C, HW, grad_mean);
}
static void cpu_forward_mix(const Backend *be, BackendMem *xt, BackendMem *target, const BackendMem *x0,
                            const BackendMem *noise, const BackendMem *coef, int B, size_t M) {
  forward_mix(F(xt), F(target), CF(x0), CF(noise), CF(coef), B, M);
}
static void cpu_fill_normal(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream,
                            uint64_t offset) {
  rng_fill_normal(F(x), n, seed, stream, offset);
}
static void cpu_fill_uniform(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream,
                             uint64_t offset) {
  rng_fill_uniform(F(x), n, seed, stream, offset);
}
static void cpu_optim_step(const Backend *be, BackendMem *p, const BackendMem *g, BackendMem *m, BackendMem *v,
                           BackendMem *ema, size_t n, const OptimStep *s) {
  adamw_ema_step(F(p), CF(g), F(m), F(v), F(ema), n, s->lr, s->beta1, s->beta2, s->eps, s->weight_decay, s->step,
                 s->grad_scale, s->ema_decay);
}
static double cpu_sum_squares(const Backend *be, const BackendMem *x, size_t n) { return sum_squares(CF(x), n); }
static size_t cpu_find_nonfinite(const Backend *be, const BackendMem *x, size_t n) { return find_nonfinite(CF(x), n); }

static const BackendOps CPU_BACKEND_OPS = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .memset = cpu_memset,
    .copy = cpu_copy,
    .describe = cpu_describe,
    .set_threads = cpu_set_threads,
    .conv2d_work_floats = cpu_conv2d_work_floats,
    .conv2d_forward = cpu_conv2d_forward,
    .conv2d_backward = cpu_conv2d_backward,
    .gemm = cpu_gemm,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .group_norm_forward = cpu_group_norm_forward,
    .group_norm_silu_forward = cpu_group_norm_silu_forward,
    .group_norm_backward = cpu_group_norm_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward_work_floats = cpu_attention_backward_work_floats,
    .attention_backward = cpu_attention_backward,
    .timestep_embedding_forward = cpu_timestep_embedding_forward,
    .embedding_lookup_forward = cpu_embedding_lookup_forward,
    .embedding_lookup_backward = cpu_embedding_lookup_backward,
    .silu_forward = cpu_silu_forward,
    .silu_backward = cpu_silu_backward,
    .silu_backward_overwrite = cpu_silu_backward_overwrite,
    .relu_forward = cpu_relu_forward,
    .softmax_forward = cpu_softmax_forward,
    .softmax_backward = cpu_softmax_backward,
    .add_forward = cpu_add_forward,
    .mul_forward = cpu_mul_forward,
    .mul_backward = cpu_mul_backward,
    .scale_forward = cpu_scale_forward,
    .scale_shift = cpu_scale_shift,
    .axpy_accumulate = cpu_axpy_accumulate,
    .axpby = cpu_axpby,
    .add_channel_forward = cpu_add_channel_forward,
    .add_channel_backward = cpu_add_channel_backward,
    .concat_channels_forward = cpu_concat_channels_forward,
    .concat_channels_backward = cpu_concat_channels_backward,
    .channel_slice_forward = cpu_channel_slice_forward,
    .channel_slice_backward = cpu_channel_slice_backward,
    .pool_tokens_forward = cpu_pool_tokens_forward,
    .pool_tokens_backward = cpu_pool_tokens_backward,
    .first_token_forward = cpu_first_token_forward,
    .first_token_backward = cpu_first_token_backward,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .upsample_nearest2x_forward = cpu_upsample_nearest2x_forward,
    .upsample_nearest2x_backward = cpu_upsample_nearest2x_backward,
    .bilinear_resize_forward = cpu_bilinear_resize_forward,
    .avg_pool2d_forward = cpu_avg_pool2d_forward,
    .avg_pool2d_backward = cpu_avg_pool2d_backward,
    .max_pool2d_forward = cpu_max_pool2d_forward,
    .max_pool2d_backward = cpu_max_pool2d_backward,
    .global_avg_pool_forward = cpu_global_avg_pool_forward,
    .global_avg_pool_backward = cpu_global_avg_pool_backward,
    .mse_forward = cpu_mse_forward,
    .mse_backward = cpu_mse_backward,
    .weighted_mse_forward = cpu_weighted_mse_forward,
    .weighted_mse_backward = cpu_weighted_mse_backward,
    .cross_entropy_forward = cpu_cross_entropy_forward,
    .cross_entropy_backward = cpu_cross_entropy_backward,
    .vlb_forward = cpu_vlb_forward,
    .vlb_backward = cpu_vlb_backward,
    .forward_mix = cpu_forward_mix,
    .fill_normal = cpu_fill_normal,
    .fill_uniform = cpu_fill_uniform,
    .optim_step = cpu_optim_step,
    .sum_squares = cpu_sum_squares,
    .find_nonfinite = cpu_find_nonfinite,
};

static const Backend CPU_BACKEND = {"cpu", &CPU_BACKEND_OPS, NULL};

const Backend *backend_cpu(void) {
  static bool configured;
  if (!configured) { /* before the first allocation: every call goes through here */
    const char *opaque = getenv("DIFFUSE_CPU_OPAQUE");
    g_shift = opaque && !strcmp(opaque, "1") ? (uintptr_t)1 << 62 : 0;
    configured = true;
  }
  return &CPU_BACKEND;
}

/* ---- the bf16 variant (--precision bf16): convolutions on AMX tiles or AVX512-BF16 (ops/conv2d_bf16.h)
 * with their weights packed once (bf16_weights.h); every other op is the CPU backend's, in fp32. The
 * ops that can write over weights (upload, copy, memset, the fills, the optimizer) and free drop the
 * packed copies of what they overwrite or release, so a checkpoint loaded later is packed anew.
 * Convolution weights are parameters (nn/params.h), which only those ops write. ---- */

static void bf16_conv2d_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                                const BackendMem *bias, const Conv2dGeom *g, BackendMem *work) {
  if (!conv2d_bf16_supports(g)) {
    cpu_conv2d_forward(be, y, x, w, bias, g, work);
    return;
  }
  conv2d_bf16_forward(F(y), CF(x), bf16_weights_packed(CF(w), g), CF(bias), g);
}
static void bf16_free(const Backend *be, BackendMem *p) { /* a later buffer at that address is other data */
  if (p) bf16_weights_invalidate(host_address(p), malloc_usable_size(host_address(p)));
  cpu_free(be, p);
}
static void bf16_upload(const Backend *be, BackendMem *dst, const void *src, size_t bytes) {
  bf16_weights_invalidate(host_address(dst), bytes);
  cpu_upload(be, dst, src, bytes);
}
static void bf16_memset(const Backend *be, BackendMem *dst, int byte, size_t bytes) {
  bf16_weights_invalidate(host_address(dst), bytes);
  cpu_memset(be, dst, byte, bytes);
}
static void bf16_copy(const Backend *be, BackendMem *dst, const BackendMem *src, size_t bytes) {
  bf16_weights_invalidate(host_address(dst), bytes);
  cpu_copy(be, dst, src, bytes);
}
static void bf16_fill_normal(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream,
                             uint64_t offset) {
  bf16_weights_invalidate(host_address(x), n * sizeof(float));
  cpu_fill_normal(be, x, n, seed, stream, offset);
}
static void bf16_fill_uniform(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t offset) {
  bf16_weights_invalidate(host_address(x), n * sizeof(float));
  cpu_fill_uniform(be, x, n, seed, stream, offset);
}
static void bf16_optim_step(const Backend *be, BackendMem *p, const BackendMem *g, BackendMem *m, BackendMem *v,
                            BackendMem *ema, size_t n, const OptimStep *s) {
  bf16_weights_invalidate(host_address(p), n * sizeof(float));
  if (ema) bf16_weights_invalidate(host_address(ema), n * sizeof(float));
  cpu_optim_step(be, p, g, m, v, ema, n, s);
}
const char *backend_cpu_bf16_kernel(char *why, size_t whylen) {
  switch (conv2d_bf16_kernel(why, whylen)) {
  case BF16_AMX: return "AMX";
  case BF16_AVX512: return "AVX512-BF16";
  default: return NULL;
  }
}
static const char *bf16_describe(const Backend *be) {
  static char line[160];
  char why[200];
  if (!line[0])
    snprintf(line, sizeof line, "%s bf16 convolutions, other products %s", backend_cpu_bf16_kernel(why, sizeof why),
             gemm_kernel_name());
  return line;
}

const Backend *backend_cpu_bf16(char *err, size_t errlen) {
  static BackendOps ops;
  static Backend bf16;
  if (conv2d_bf16_kernel(err, errlen) == BF16_NONE) return NULL;
  if (!bf16.ops) {
    ops = CPU_BACKEND_OPS;
    ops.conv2d_forward = bf16_conv2d_forward;
    ops.free = bf16_free, ops.upload = bf16_upload, ops.memset = bf16_memset, ops.copy = bf16_copy;
    ops.fill_normal = bf16_fill_normal, ops.fill_uniform = bf16_fill_uniform, ops.optim_step = bf16_optim_step;
    ops.describe = bf16_describe;
    bf16 = (Backend){"cpu", &ops, NULL};
  }
  backend_cpu(); /* the address shift, as for the fp32 backend */
  return &bf16;
}
