/* backend.h - the seam between the model code and the memory and kernels it runs on.
 *
 * A Backend is a device (the CPU, later a GPU) with its memory functions and an op table holding
 * every kernel autograd, the objective, the denoiser and the trainer use. Code above the seam
 * (autograd, nn, diffusion, samplers, train, eval, cli) never reads or writes tensor memory: it
 * calls ops on BackendMem addresses (core/tensor.h) and moves data across with upload/download
 * where it must (batches in, samples and statistics out, checkpoints both ways). So a new backend
 * changes nothing above this header: it fills in a BackendOps, registers itself in backend.c, and
 * tests/test_backend_ops.c checks it against the fixtures and the CPU backend.
 *
 * Conventions, as the kernels of ops/: outputs first, then inputs, then sizes; backward kernels
 * accumulate (+=) into gradients and skip NULL ones; every address is in the backend's memory,
 * except where an argument says "host". All calls are synchronous as seen from the host: after an
 * op returns, a download sees its result. copy may overlap (memmove semantics).
 */
#ifndef DIFFUSE_BACKEND_BACKEND_H
#define DIFFUSE_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/shapes.h"
#include "core/tensor.h"

/* The fused optimizer step on the flat parameter buffers: with gs = grad_scale (gradient clipping)
 *   g' = gs g;  p *= 1 - lr wd;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
 *   p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps);  ema = d ema + (1 - d) p
 * (AdamW, Loshchilov & Hutter 2019, in torch.optim.AdamW's order; the EMA skipped when ema is NULL).
 * `step` t counts from 1. Padding between parameters is zero and stays zero. */
typedef struct {
  double lr, beta1, beta2, eps, weight_decay; /* double, as PyTorch's Python floats */
  long step;
  float grad_scale;
  double ema_decay;
} OptimStep;

typedef struct BackendOps BackendOps;

struct Backend {
  const char *name;        /* "cpu", "cuda:0", as --device spells it */
  const BackendOps *ops;
  void *ctx;               /* the implementation's state (a device handle, a stream) */
};

struct BackendOps {
  /* ---- memory ---- */
  BackendMem *(*alloc)(const Backend *be, size_t bytes); /* 64-byte aligned; NULL when out of memory */
  void (*free)(const Backend *be, BackendMem *p);
  void (*upload)(const Backend *be, BackendMem *dst, const void *host_src, size_t bytes);
  void (*download)(const Backend *be, void *host_dst, const BackendMem *src, size_t bytes);
  void (*memset)(const Backend *be, BackendMem *dst, int byte, size_t bytes);
  void (*copy)(const Backend *be, BackendMem *dst, const BackendMem *src, size_t bytes);

  /* ---- the device ---- */
  const char *(*describe)(const Backend *be); /* one line: the device and its kernels, for info and bench */
  void (*set_threads)(const Backend *be, int threads); /* host threads for the kernels (bench --threads) */

  /* ---- convolution, GEMM, linear (ops/conv2d.h, gemm.h, linear.h) ---- */
  size_t (*conv2d_work_floats)(const Backend *be, const Conv2dGeom *g); /* scratch for conv2d_* `work` */
  void (*conv2d_forward)(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                         const BackendMem *bias, const Conv2dGeom *g, BackendMem *work);
  void (*conv2d_backward)(const Backend *be, BackendMem *dx, BackendMem *dw, BackendMem *dbias, const BackendMem *dy,
                          const BackendMem *x, const BackendMem *w, const Conv2dGeom *g, BackendMem *work);
  /* C (M, N) = alpha op(A) op(B) + beta C, row-major with leading dimensions. */
  void (*gemm)(const Backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const BackendMem *A,
               int lda, const BackendMem *B, int ldb, float beta, BackendMem *C, int ldc);
  void (*linear_forward)(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                         const BackendMem *b, int N, int in, int out);
  void (*linear_backward)(const Backend *be, BackendMem *dx, BackendMem *dw, BackendMem *db, const BackendMem *dy,
                          const BackendMem *x, const BackendMem *w, int N, int in, int out);

  /* ---- normalisation, attention (ops/norm.h, attention.h) ---- */
  void (*group_norm_forward)(const Backend *be, BackendMem *y, BackendMem *mean, BackendMem *rstd,
                             const BackendMem *x, const BackendMem *gamma, const BackendMem *beta, int B, int C,
                             int HW, int G, float eps);
  /* y = silu(h), h = group_norm(x); h (may be NULL) is kept for the backward. */
  void (*group_norm_silu_forward)(const Backend *be, BackendMem *y, BackendMem *h, BackendMem *mean,
                                  BackendMem *rstd, const BackendMem *x, const BackendMem *gamma,
                                  const BackendMem *beta, int B, int C, int HW, int G, float eps);
  void (*group_norm_backward)(const Backend *be, BackendMem *dx, BackendMem *dgamma, BackendMem *dbeta,
                              const BackendMem *dy, const BackendMem *x, const BackendMem *mean,
                              const BackendMem *rstd, const BackendMem *gamma, int B, int C, int HW, int G);
  void (*attention_forward)(const Backend *be, BackendMem *y, BackendMem *probs, const BackendMem *q,
                            const BackendMem *k, const BackendMem *v, int B, int C, int N);
  size_t (*attention_backward_work_floats)(const Backend *be, int N);
  void (*attention_backward)(const Backend *be, BackendMem *dq, BackendMem *dk, BackendMem *dv,
                             const BackendMem *dy, const BackendMem *probs, const BackendMem *q, const BackendMem *k,
                             const BackendMem *v, int B, int C, int N, BackendMem *work);

  /* ---- embeddings (ops/embedding.h); labels are int32 in backend memory ---- */
  void (*timestep_embedding_forward)(const Backend *be, BackendMem *y, const BackendMem *t, int B, int dim);
  void (*embedding_lookup_forward)(const Backend *be, BackendMem *y, const BackendMem *table,
                                   const BackendMem *labels, int B, int dim);
  void (*embedding_lookup_backward)(const Backend *be, BackendMem *dtable, const BackendMem *dy,
                                    const BackendMem *labels, int B, int dim);

  /* ---- pointwise (ops/activation.h, elementwise.h) ---- */
  void (*silu_forward)(const Backend *be, BackendMem *y, const BackendMem *x, size_t n);
  void (*silu_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *x, size_t n);
  /* dx = dy silu'(x) (overwrites, for group_norm_silu's backward) */
  void (*silu_backward_overwrite)(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *x,
                                  size_t n);
  void (*relu_forward)(const Backend *be, BackendMem *y, const BackendMem *x, size_t n); /* in place allowed */
  void (*softmax_forward)(const Backend *be, BackendMem *y, const BackendMem *x, int rows, int cols);
  void (*softmax_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *y, int rows,
                           int cols);
  void (*add_forward)(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, size_t n);
  void (*mul_forward)(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, size_t n);
  void (*mul_backward)(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dy, const BackendMem *a,
                       const BackendMem *b, size_t n);
  void (*scale_forward)(const Backend *be, BackendMem *y, const BackendMem *x, float alpha, size_t n);
  /* y = alpha x + beta (scalars) */
  void (*scale_shift)(const Backend *be, BackendMem *y, const BackendMem *x, float alpha, float beta, size_t n);
  /* dx += alpha dy */
  void (*axpy_accumulate)(const Backend *be, BackendMem *dx, const BackendMem *dy, float alpha, size_t n);
  /* y = a x + b z (y may alias x or z): the denoiser's eps / x0 / v conversions and its VJP */
  void (*axpby)(const Backend *be, BackendMem *y, float a, const BackendMem *x, float b, const BackendMem *z,
                size_t n);
  void (*add_channel_forward)(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *v, int BC,
                              int HW);
  void (*add_channel_backward)(const Backend *be, BackendMem *dv, const BackendMem *dy, int BC, int HW);
  void (*concat_channels_forward)(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, int B,
                                  int Ca, int Cb, int HW);
  void (*concat_channels_backward)(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dy, int B,
                                   int Ca, int Cb, int HW);
  /* y (B, n, HW) = channels c0 .. c0 + n - 1 of x (B, C, HW); backward: dx's channels += dy */
  void (*channel_slice_forward)(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int c0, int n,
                                int HW);
  void (*channel_slice_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int c0, int n,
                                 int HW);
  void (*pool_tokens_forward)(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *pos, int B, int C,
                              int HW);
  void (*pool_tokens_backward)(const Backend *be, BackendMem *dx, BackendMem *dpos, const BackendMem *dy, int B, int C,
                               int HW);
  void (*first_token_forward)(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int N);
  void (*first_token_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int N);
  /* mask: n bytes in backend memory; the Philox stream and offsets as ops/elementwise.h */
  void (*dropout_forward)(const Backend *be, BackendMem *y, BackendMem *mask, const BackendMem *x, size_t n, float p,
                          uint64_t seed, uint64_t stream, uint64_t offset);
  void (*dropout_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *mask, size_t n,
                           float p);

  /* ---- resampling and pooling (ops/resample.h, pool.h); argmax is int32 ---- */
  void (*upsample_nearest2x_forward)(const Backend *be, BackendMem *y, const BackendMem *x, int BC, int H, int W);
  void (*upsample_nearest2x_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, int BC, int H, int W);
  void (*bilinear_resize_forward)(const Backend *be, BackendMem *y, const BackendMem *x, int BC, int H, int W, int Ho,
                                  int Wo);
  void (*avg_pool2d_forward)(const Backend *be, BackendMem *y, const BackendMem *x, const Pool2dGeom *g,
                             bool count_include_pad);
  void (*avg_pool2d_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, const Pool2dGeom *g,
                              bool count_include_pad);
  void (*max_pool2d_forward)(const Backend *be, BackendMem *y, BackendMem *argmax /* int32; NULL: no backward */,
                             const BackendMem *x, const Pool2dGeom *g);
  void (*max_pool2d_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *argmax,
                              const Pool2dGeom *g);
  void (*global_avg_pool_forward)(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int HW);
  void (*global_avg_pool_backward)(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int HW);

  /* ---- losses (ops/loss.h): the scalar loss and its upstream gradient are one float in backend memory ---- */
  void (*mse_forward)(const Backend *be, BackendMem *loss, const BackendMem *a, const BackendMem *b, size_t n);
  void (*mse_backward)(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dloss,
                       const BackendMem *a, const BackendMem *b, size_t n);
  void (*weighted_mse_forward)(const Backend *be, BackendMem *loss, const BackendMem *a, const BackendMem *b,
                               const BackendMem *w, int B, size_t M);
  void (*weighted_mse_backward)(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dloss,
                                const BackendMem *a, const BackendMem *b, const BackendMem *w, int B, size_t M);
  /* labels: int32 in backend memory */
  void (*cross_entropy_forward)(const Backend *be, BackendMem *loss, const BackendMem *logits, const BackendMem *labels,
                                int B, int K);
  void (*cross_entropy_backward)(const Backend *be, BackendMem *dlogits, const BackendMem *dloss,
                                 const BackendMem *logits, const BackendMem *labels, int B, int K);

  /* the learned-variance bound (ops/loss.h): terms (B) bits/dim per sample, net (B, 2C, HW), coef
   * (B, VLB_COEFS) as core/gaussian.h; the backward's mean-channel gradient only when grad_mean */
  void (*vlb_forward)(const Backend *be, BackendMem *loss, BackendMem *terms, const BackendMem *net,
                      const BackendMem *xt, const BackendMem *x0, const BackendMem *coef, int B, int C, int HW);
  void (*vlb_backward)(const Backend *be, BackendMem *dnet, const BackendMem *dloss, const BackendMem *net,
                       const BackendMem *xt, const BackendMem *x0, const BackendMem *coef, int B, int C, int HW,
                       bool grad_mean);

  /* ---- diffusion: the forward process and the regression target, per sample b of B (M elements each):
   * xt = coef[4b] x0 + coef[4b+1] noise (alpha, sigma) and target = coef[4b+2] x0 + coef[4b+3] noise
   * (eps: 0, 1; x0: 1, 0; v = alpha eps - sigma x0: -sigma, alpha). coef (B, 4) ---- */
  void (*forward_mix)(const Backend *be, BackendMem *xt, BackendMem *target, const BackendMem *x0,
                      const BackendMem *noise, const BackendMem *coef, int B, size_t M);

  /* ---- random fills, Philox 4x32-10 as core/rng.h: element i of the fill is element offset + i of the
   * stream (seed, stream), so any backend draws the same numbers ---- */
  void (*fill_normal)(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
  void (*fill_uniform)(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

  /* ---- the optimizer on flat buffers, and its reductions (results to the host) ---- */
  void (*optim_step)(const Backend *be, BackendMem *p, const BackendMem *g, BackendMem *m, BackendMem *v,
                     BackendMem *ema, size_t n, const OptimStep *s);
  double (*sum_squares)(const Backend *be, const BackendMem *x, size_t n); /* accumulated in double */
  size_t (*find_nonfinite)(const Backend *be, const BackendMem *x, size_t n); /* first NaN/inf index, or n */
};

/* ---- devices ---- */

/* The CPU backend (always compiled): today's kernels of ops/, on host memory. */
const Backend *backend_cpu(void);

/* The CPU backend with bf16 convolutions (`--precision bf16`): bf16 products, fp32 sums, on AMX tiles or
 * AVX512-BF16 (ops/conv2d_bf16.h); everything else as backend_cpu(). Inference only: its backward ops are the fp32
 * ones. NULL + why where this CPU or OS cannot run it. */
const Backend *backend_cpu_bf16(char *err, size_t errlen);
/* Its convolution kernel on this CPU: "AMX", "AVX512-BF16" (no AMX: direct convolutions, slower than
 * the fp32 backend's Winograd ones), or NULL + why. */
const char *backend_cpu_bf16_kernel(char *why, size_t whylen);

/* The backend a --device string names: "cpu", "cuda" (= "cuda:0") or "cuda:N". NULL + a message
 * when the name is malformed, the backend is not compiled into this build (the message names the
 * build option), or the device does not exist. */
const Backend *backend_open(const char *device, char *err, size_t errlen);

/* Every device of every compiled backend that this machine has, the CPU first; returns the count
 * (at most max). tests/test_backend_ops.c runs its cases on each. */
int backend_list(const Backend **out, int max);

/* One line per compiled backend and device, for `diffuse info --devices`. */
void backend_print_devices(void);

/* ---- helpers over the op table (the same calls, shorter to write) ---- */

/* A new buffer of `bytes`; out of memory is an environment error naming `what` (exit 1). */
BackendMem *backend_alloc_or_exit(const Backend *be, size_t bytes, const char *what);

static inline void backend_upload(const Backend *be, BackendMem *dst, const void *src, size_t bytes) {
  be->ops->upload(be, dst, src, bytes);
}
static inline void backend_download(const Backend *be, void *dst, const BackendMem *src, size_t bytes) {
  be->ops->download(be, dst, src, bytes);
}
/* A tensor's data to the host (numel floats) and back. */
static inline void tensor_download(const Tensor *t, float *host) {
  t->backend->ops->download(t->backend, host, t->data, t->numel * sizeof(float));
}
static inline void tensor_upload(Tensor *t, const float *host) {
  t->backend->ops->upload(t->backend, t->data, host, t->numel * sizeof(float));
}

#endif
