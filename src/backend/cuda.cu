/* cuda.cu - the CUDA backend: device memory, cuBLAS GEMMs and own kernels for every op of the table.
 *
 * Status: compiled and linked by -DDIFFUSE_CUDA=ON, NOT YET RUN ON A GPU (none was available when it
 * was written). tests/test_backend_ops.c checks every op against the fixtures and the CPU backend on
 * the first machine with a GPU (scripts/cuda_check.sh); until it has passed there, treat results from
 * --device cuda as unverified.
 *
 * Design: one stream and one cuBLAS handle per device; every op is enqueued on the stream and the
 * host only waits where a result comes back (download, the reductions), so a training step runs
 * without host synchronisation until the loss is read. Kernels follow the CPU kernels' formulas
 * (src/ops/) and keep their determinism: no floating-point atomics, reductions in a fixed order.
 * Convolutions are im2col + cuBLAS SGEMM per image (cuDNN is the planned faster path); GEMMs are
 * row-major, mapped onto column-major cuBLAS by computing C^T = op(B)^T op(A)^T; TF32 is off, so
 * results are fp32 like the CPU's. Philox4x32-10 is the same counter scheme as core/rng.c, so a draw
 * is the same number on both backends (Box-Muller in double; libm and CUDA may differ by an ulp).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _Noreturn [[noreturn]] /* the C headers' spelling, in C++ */
extern "C" {
#include "backend/backend.h"
#include "core/error.h"
#include "core/gaussian.h"
#include "cuda_backend.h"
}
#include "../ops/window_index.h"

#define CUDA_MAX_DEVICES 16
#define THREADS 256

typedef struct {
  int device;
  cudaStream_t stream;
  cublasHandle_t blas;
  double *partials;       /* (REDUCE_BLOCKS) per-block sums of a reduction */
  unsigned long long *index; /* find_nonfinite's result */
  void *staging;          /* overlapping copies go through it */
  size_t staging_bytes;
  char name[16], description[256];
} CudaCtx;

static CudaCtx g_ctx[CUDA_MAX_DEVICES];
static Backend g_backend[CUDA_MAX_DEVICES];
static bool g_open[CUDA_MAX_DEVICES];

[[noreturn]] static void cuda_fail(const char *what, const char *why) {
  fprintf(stderr, "diffuse: CUDA error in %s: %s (is the GPU healthy and free? run with --device cpu to compare)\n",
          what, why);
  exit(1);
}

#define CK(call)                                                   \
  do {                                                             \
    cudaError_t e_ = (call);                                       \
    if (e_ != cudaSuccess) cuda_fail(#call, cudaGetErrorString(e_)); \
  } while (0)
#define CB(call)                                                   \
  do {                                                             \
    cublasStatus_t s_ = (call);                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) cuda_fail(#call, cublasGetStatusString(s_)); \
  } while (0)
/* After a kernel launch: a bad configuration shows at once, not at the next synchronisation. */
#define LAUNCHED(name) CK(cudaGetLastError())

static CudaCtx *C(const Backend *be) { return (CudaCtx *)be->ctx; }
static cudaStream_t S(const Backend *be) { return C(be)->stream; }

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))

static unsigned blocks_for(size_t n) {
  size_t b = (n + THREADS - 1) / THREADS;
  return (unsigned)(b < 1 ? 1 : b > 8192 ? 8192 : b);
}

#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---- memory ---- */

static BackendMem *cu_alloc(const Backend *be, size_t bytes) {
  CK(cudaSetDevice(C(be)->device));
  void *p = NULL;
  if (cudaMalloc(&p, bytes ? (bytes + 255) / 256 * 256 : 256) != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky-free error: out of memory is reported by the caller */
    return NULL;
  }
  return (BackendMem *)p;
}
static void cu_free(const Backend *be, BackendMem *p) {
  CK(cudaStreamSynchronize(S(be))); /* nothing queued may still use it */
  CK(cudaFree(p));
}
static void cu_upload(const Backend *be, BackendMem *dst, const void *src, size_t bytes) {
  if (!bytes) return;
  CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, S(be)));
  CK(cudaStreamSynchronize(S(be))); /* the host buffer may be reused as soon as we return */
}
static void cu_download(const Backend *be, void *dst, const BackendMem *src, size_t bytes) {
  if (!bytes) return;
  CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, S(be)));
  CK(cudaStreamSynchronize(S(be)));
}
static void cu_memset(const Backend *be, BackendMem *dst, int byte, size_t bytes) {
  if (bytes) CK(cudaMemsetAsync(dst, byte, bytes, S(be)));
}
static void cu_copy(const Backend *be, BackendMem *dst, const BackendMem *src, size_t bytes) {
  if (!bytes || dst == src) return;
  const char *d = (const char *)dst, *s = (const char *)src;
  if (d + bytes <= s || s + bytes <= d) {
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, S(be)));
    return;
  }
  CudaCtx *c = C(be); /* overlapping: through a staging buffer that grows once to the largest copy */
  if (bytes > c->staging_bytes) {
    CK(cudaStreamSynchronize(c->stream));
    if (c->staging) CK(cudaFree(c->staging));
    CK(cudaMalloc(&c->staging, bytes));
    c->staging_bytes = bytes;
  }
  CK(cudaMemcpyAsync(c->staging, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
  CK(cudaMemcpyAsync(dst, c->staging, bytes, cudaMemcpyDeviceToDevice, c->stream));
}
static const char *cu_describe(const Backend *be) { return C(be)->description; }
static void cu_set_threads(const Backend *be, int threads) { (void)be, (void)threads; }

/* ---- GEMM (row-major on column-major cuBLAS) ---- */

static void gemm_rm(const Backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *Cm, int ldc) {
  if (M == 0 || N == 0) return;
  CB(cublasSgemm(C(be)->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb,
                 A, lda, &beta, Cm, ldc));
}

static void gemm_rm_batched(const Backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                            int lda, long long sa, const float *B, int ldb, long long sb, float beta, float *Cm, int ldc,
                            long long sc, int batch) {
  CB(cublasSgemmStridedBatched(C(be)->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                               &alpha, B, ldb, sb, A, lda, sa, &beta, Cm, ldc, sc, batch));
}

static void cu_gemm(const Backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const BackendMem *A, int lda,
                    const BackendMem *B, int ldb, float beta, BackendMem *Cm, int ldc) {
  gemm_rm(be, ta, tb, M, N, K, alpha, CF(A), lda, CF(B), ldb, beta, F(Cm), ldc);
}

/* ---- small kernels shared by several ops ---- */

__global__ void k_add_bias_rows(float *y, const float *b, size_t rows, int cols) { /* y (rows, cols) += b (cols) */
  GRID_STRIDE(i, rows * cols) y[i] += b[i % cols];
}

__global__ void k_add_bias_channels(float *y, const float *b, int C, size_t P, size_t n) { /* y (B, C, P) += b[c] */
  GRID_STRIDE(i, n) y[i] += b[(i / P) % C];
}

/* out[j] += sum_r in[r, j] (rows x cols), one thread per column, rows in order: deterministic. */
__global__ void k_col_sums(float *out, const float *in, int rows, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  double s = 0.0;
  for (int r = 0; r < rows; r++) s += in[(size_t)r * cols + j];
  out[j] += (float)s;
}

/* out[c] += sum over b, p of in[b, c, p]: one block per channel, a fixed-order tree. */
__global__ void k_channel_sums(float *out, const float *in, int B, int Cn, int P) {
  __shared__ double part[THREADS];
  const int c = blockIdx.x;
  double s = 0.0;
  for (int b = 0; b < B; b++)
    for (int p = threadIdx.x; p < P; p += blockDim.x) s += in[((size_t)b * Cn + c) * P + p];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[c] += (float)part[0];
}

/* Block-wide double sum (blockDim.x == THREADS); the result in thread 0. */
__device__ double block_sum(double v, double *shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int w = THREADS / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) shared[threadIdx.x] += shared[threadIdx.x + w];
    __syncthreads();
  }
  const double r = shared[0];
  __syncthreads();
  return r;
}

/* ---- convolution: im2col + GEMM per image ---- */

/* col (Cin kh kw, Ho Wo) of one image x (Cin, H, W). */
__global__ void k_im2col(float *col, const float *x, Conv2dGeom g, int Ho, int Wo) {
  const size_t P = (size_t)Ho * Wo, n = (size_t)g.Cin * g.kh * g.kw * P;
  GRID_STRIDE(i, n) {
    const size_t row = i / P, p = i % P;
    const int c = (int)(row / (g.kh * g.kw)), r = (int)(row % (g.kh * g.kw)), ki = r / g.kw, kj = r % g.kw;
    const int oh = (int)(p / Wo), ow = (int)(p % Wo);
    const int h = oh * g.sh - g.pad_top + ki, w = ow * g.sw - g.pad_left + kj;
    col[i] = (h >= 0 && h < g.H && w >= 0 && w < g.W) ? x[((size_t)c * g.H + h) * g.W + w] : 0.0f;
  }
}

/* dx (Cin, H, W) += the columns gathered back: each input pixel sums the column entries that read it. */
__global__ void k_col2im(float *dx, const float *col, Conv2dGeom g, int Ho, int Wo) {
  const size_t n = (size_t)g.Cin * g.H * g.W, P = (size_t)Ho * Wo;
  GRID_STRIDE(i, n) {
    const int c = (int)(i / ((size_t)g.H * g.W)), h = (int)(i / g.W % g.H), w = (int)(i % g.W);
    float s = 0.0f;
    for (int ki = 0; ki < g.kh; ki++) {
      const int t = h + g.pad_top - ki;
      if (t < 0 || t % g.sh) continue;
      const int oh = t / g.sh;
      if (oh >= Ho) continue;
      for (int kj = 0; kj < g.kw; kj++) {
        const int u = w + g.pad_left - kj;
        if (u < 0 || u % g.sw) continue;
        const int ow = u / g.sw;
        if (ow >= Wo) continue;
        s += col[(((size_t)c * g.kh + ki) * g.kw + kj) * P + (size_t)oh * Wo + ow];
      }
    }
    dx[i] += s;
  }
}

static size_t cu_conv2d_work_floats(const Backend *be, const Conv2dGeom *g) {
  return (size_t)g->Cin * g->kh * g->kw * conv2d_out_h(g) * conv2d_out_w(g);
}

static void cu_conv2d_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                              const BackendMem *bias, const Conv2dGeom *g, BackendMem *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const size_t in_img = (size_t)g->Cin * g->H * g->W, out_img = (size_t)g->Cout * P;
  for (int b = 0; b < g->B; b++) {
    k_im2col<<<blocks_for((size_t)K * P), THREADS, 0, S(be)>>>(F(work), CF(x) + b * in_img, *g, Ho, Wo);
    LAUNCHED("im2col");
    gemm_rm(be, false, false, g->Cout, P, K, 1.0f, CF(w), K, F(work), P, 0.0f, F(y) + b * out_img, P);
  }
  if (bias) {
    k_add_bias_channels<<<blocks_for(g->B * out_img), THREADS, 0, S(be)>>>(F(y), CF(bias), g->Cout, P, g->B * out_img);
    LAUNCHED("conv2d bias");
  }
}

static void cu_conv2d_backward(const Backend *be, BackendMem *dx, BackendMem *dw, BackendMem *dbias,
                               const BackendMem *dy, const BackendMem *x, const BackendMem *w, const Conv2dGeom *g,
                               BackendMem *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const size_t in_img = (size_t)g->Cin * g->H * g->W, out_img = (size_t)g->Cout * P;
  for (int b = 0; b < g->B; b++) {
    const float *dyb = CF(dy) + b * out_img;
    if (dw) {
      k_im2col<<<blocks_for((size_t)K * P), THREADS, 0, S(be)>>>(F(work), CF(x) + b * in_img, *g, Ho, Wo);
      LAUNCHED("im2col");
      gemm_rm(be, false, true, g->Cout, K, P, 1.0f, dyb, P, F(work), P, 1.0f, F(dw), K); /* dW += dY col^T */
    }
    if (dx) {
      gemm_rm(be, true, false, K, P, g->Cout, 1.0f, CF(w), K, dyb, P, 0.0f, F(work), P); /* dcol = W^T dY */
      k_col2im<<<blocks_for(in_img), THREADS, 0, S(be)>>>(F(dx) + b * in_img, F(work), *g, Ho, Wo);
      LAUNCHED("col2im");
    }
  }
  if (dbias) {
    k_channel_sums<<<g->Cout, THREADS, 0, S(be)>>>(F(dbias), CF(dy), g->B, g->Cout, P);
    LAUNCHED("conv2d dbias");
  }
}

/* ---- linear: y (N, out) = x (N, in) w^T + b ---- */

static void cu_linear_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *w,
                              const BackendMem *b, int N, int in, int out) {
  gemm_rm(be, false, true, N, out, in, 1.0f, CF(x), in, CF(w), in, 0.0f, F(y), out);
  if (b) {
    k_add_bias_rows<<<blocks_for((size_t)N * out), THREADS, 0, S(be)>>>(F(y), CF(b), (size_t)N, out);
    LAUNCHED("linear bias");
  }
}

static void cu_linear_backward(const Backend *be, BackendMem *dx, BackendMem *dw, BackendMem *db,
                               const BackendMem *dy, const BackendMem *x, const BackendMem *w, int N, int in, int out) {
  if (dx) gemm_rm(be, false, false, N, in, out, 1.0f, CF(dy), out, CF(w), in, 1.0f, F(dx), in);
  if (dw) gemm_rm(be, true, false, out, in, N, 1.0f, CF(dy), out, CF(x), in, 1.0f, F(dw), in);
  if (db) {
    k_col_sums<<<(out + THREADS - 1) / THREADS, THREADS, 0, S(be)>>>(F(db), CF(dy), N, out);
    LAUNCHED("linear db");
  }
}

/* ---- GroupNorm (+SiLU) ---- */

__device__ float silu_f(float v) { return v / (1.0f + expf(-v)); }

/* One block per (b, g): statistics in double, then normalise (and SiLU). */
__global__ void k_group_norm_forward(float *y, float *h, float *mean, float *rstd, const float *x, const float *gamma,
                                     const float *beta, int Cn, int HW, int G, float eps, bool silu) {
  __shared__ double shared[THREADS];
  const int bg = blockIdx.x, b = bg / G, g = bg % G, Cg = Cn / G;
  const size_t M = (size_t)Cg * HW, base = ((size_t)b * Cn + (size_t)g * Cg) * HW;
  double s = 0.0;
  for (size_t i = threadIdx.x; i < M; i += blockDim.x) s += x[base + i];
  const double mu = block_sum(s, shared) / (double)M;
  double ss = 0.0;
  for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
    const double d = x[base + i] - mu;
    ss += d * d;
  }
  const double var = block_sum(ss, shared) / (double)M;
  const float rs = (float)(1.0 / sqrt(var + eps)), fmu = (float)mu;
  if (threadIdx.x == 0) mean[bg] = fmu, rstd[bg] = rs;
  for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
    const int ch = g * Cg + (int)(i / HW);
    const float scale = rs * gamma[ch], shift = beta[ch] - fmu * scale;
    const float v = x[base + i] * scale + shift;
    if (!silu) {
      y[base + i] = v;
    } else {
      if (h) h[base + i] = v;
      y[base + i] = silu_f(v);
    }
  }
}

static void cu_group_norm_forward(const Backend *be, BackendMem *y, BackendMem *mean, BackendMem *rstd,
                                  const BackendMem *x, const BackendMem *gamma, const BackendMem *beta, int B, int Cn,
                                  int HW, int G, float eps) {
  k_group_norm_forward<<<B * G, THREADS, 0, S(be)>>>(F(y), NULL, F(mean), F(rstd), CF(x), CF(gamma), CF(beta), Cn, HW,
                                                    G, eps, false);
  LAUNCHED("group_norm");
}

static void cu_group_norm_silu_forward(const Backend *be, BackendMem *y, BackendMem *h, BackendMem *mean,
                                       BackendMem *rstd, const BackendMem *x, const BackendMem *gamma,
                                       const BackendMem *beta, int B, int Cn, int HW, int G, float eps) {
  k_group_norm_forward<<<B * G, THREADS, 0, S(be)>>>(F(y), F(h), F(mean), F(rstd), CF(x), CF(gamma), CF(beta), Cn, HW,
                                                    G, eps, true);
  LAUNCHED("group_norm_silu");
}

/* dgamma[c] += sum dy xhat, dbeta[c] += sum dy: one block per channel. */
__global__ void k_group_norm_dparams(float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                                     const float *rstd, int B, int Cn, int HW, int G) {
  __shared__ double shared[THREADS];
  const int ch = blockIdx.x, g = ch / (Cn / G);
  double sg = 0.0, sb = 0.0;
  for (int b = 0; b < B; b++) {
    const float mu = mean[b * G + g], rs = rstd[b * G + g];
    const size_t at = ((size_t)b * Cn + ch) * HW;
    for (int i = threadIdx.x; i < HW; i += blockDim.x) {
      sg += (double)dy[at + i] * (x[at + i] - mu) * rs;
      sb += dy[at + i];
    }
  }
  sg = block_sum(sg, shared);
  sb = block_sum(sb, shared);
  if (threadIdx.x == 0) {
    if (dgamma) dgamma[ch] += (float)sg;
    if (dbeta) dbeta[ch] += (float)sb;
  }
}

/* dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dy gamma: one block per (b, g). */
__global__ void k_group_norm_dx(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                                const float *gamma, int Cn, int HW, int G) {
  __shared__ double shared[THREADS];
  const int bg = blockIdx.x, b = bg / G, g = bg % G, Cg = Cn / G;
  const size_t M = (size_t)Cg * HW, base = ((size_t)b * Cn + (size_t)g * Cg) * HW;
  const float mu = mean[bg], rs = rstd[bg];
  double s1 = 0.0, s2 = 0.0;
  for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
    const double dxh = (double)dy[base + i] * gamma[g * Cg + (int)(i / HW)];
    s1 += dxh;
    s2 += dxh * ((x[base + i] - mu) * rs);
  }
  const double m1 = block_sum(s1, shared) / (double)M, m2 = block_sum(s2, shared) / (double)M;
  for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
    const float dxh = dy[base + i] * gamma[g * Cg + (int)(i / HW)], xh = (x[base + i] - mu) * rs;
    dx[base + i] += rs * (float)(dxh - m1 - xh * m2);
  }
}

static void cu_group_norm_backward(const Backend *be, BackendMem *dx, BackendMem *dgamma, BackendMem *dbeta,
                                   const BackendMem *dy, const BackendMem *x, const BackendMem *mean,
                                   const BackendMem *rstd, const BackendMem *gamma, int B, int Cn, int HW, int G) {
  if (dgamma || dbeta) {
    k_group_norm_dparams<<<Cn, THREADS, 0, S(be)>>>(F(dgamma), F(dbeta), CF(dy), CF(x), CF(mean), CF(rstd), B, Cn, HW,
                                                    G);
    LAUNCHED("group_norm dparams");
  }
  if (dx) {
    k_group_norm_dx<<<B * G, THREADS, 0, S(be)>>>(F(dx), CF(dy), CF(x), CF(mean), CF(rstd), CF(gamma), Cn, HW, G);
    LAUNCHED("group_norm dx");
  }
}

/* ---- softmax over rows, attention ---- */

/* One block per row: max, exp, normalise (in place allowed). */
__global__ void k_softmax(float *y, const float *x, int cols) {
  __shared__ double shared[THREADS];
  __shared__ float row_max;
  const size_t at = (size_t)blockIdx.x * cols;
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int j = 0; j < cols; j++) m = fmaxf(m, x[at + j]);
    row_max = m;
  }
  __syncthreads();
  double s = 0.0;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) {
    const float e = expf(x[at + j] - row_max);
    y[at + j] = e;
    s += e;
  }
  const float inv = (float)(1.0 / block_sum(s, shared));
  for (int j = threadIdx.x; j < cols; j += blockDim.x) y[at + j] *= inv;
}

/* dx += y (dy - rowsum(y dy)) (scale: 1) or, for attention, dS = scale y (dP - rowsum(y dP)) in place. */
__global__ void k_softmax_backward(float *dx, const float *dy, const float *y, int cols, float scale, bool overwrite) {
  __shared__ double shared[THREADS];
  const size_t at = (size_t)blockIdx.x * cols;
  double s = 0.0;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) s += (double)y[at + j] * dy[at + j];
  const float dot = (float)block_sum(s, shared);
  for (int j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = scale * y[at + j] * (dy[at + j] - dot);
    dx[at + j] = overwrite ? v : dx[at + j] + v;
  }
}

static void cu_softmax_forward(const Backend *be, BackendMem *y, const BackendMem *x, int rows, int cols) {
  k_softmax<<<rows, THREADS, 0, S(be)>>>(F(y), CF(x), cols);
  LAUNCHED("softmax");
}

static void cu_softmax_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *y, int rows,
                                int cols) {
  k_softmax_backward<<<rows, THREADS, 0, S(be)>>>(F(dx), CF(dy), CF(y), cols, 1.0f, false);
  LAUNCHED("softmax backward");
}

/* P (B, N, N) = softmax(s Q^T K), out (B, C, N) = V P^T, as attention.c. */
static void cu_attention_forward(const Backend *be, BackendMem *y, BackendMem *probs, const BackendMem *q,
                                 const BackendMem *k, const BackendMem *v, int B, int Cn, int N) {
  const float scale = 1.0f / sqrtf((float)Cn);
  const long long sx = (long long)Cn * N, sp = (long long)N * N;
  gemm_rm_batched(be, true, false, N, N, Cn, scale, CF(q), N, sx, CF(k), N, sx, 0.0f, F(probs), N, sp, B);
  k_softmax<<<B * N, THREADS, 0, S(be)>>>(F(probs), F(probs), N);
  LAUNCHED("attention softmax");
  gemm_rm_batched(be, false, true, Cn, N, N, 1.0f, CF(v), N, sx, F(probs), N, sp, 0.0f, F(y), N, sx, B);
}

static size_t cu_attention_backward_work_floats(const Backend *be, int N) { return (size_t)N * N; }

static void cu_attention_backward(const Backend *be, BackendMem *dq, BackendMem *dk, BackendMem *dv,
                                  const BackendMem *dy, const BackendMem *probs, const BackendMem *q,
                                  const BackendMem *k, const BackendMem *v, int B, int Cn, int N, BackendMem *work) {
  const float scale = 1.0f / sqrtf((float)Cn);
  const size_t sx = (size_t)Cn * N, sp = (size_t)N * N;
  for (int b = 0; b < B; b++) { /* work holds one image's dS (N x N) */
    const float *P = CF(probs) + b * sp, *dO = CF(dy) + b * sx;
    if (dv) gemm_rm(be, false, false, Cn, N, N, 1.0f, dO, N, P, N, 1.0f, F(dv) + b * sx, N);
    if (!dq && !dk) continue;
    gemm_rm(be, true, false, N, N, Cn, 1.0f, dO, N, CF(v) + b * sx, N, 0.0f, F(work), N); /* dP */
    k_softmax_backward<<<N, THREADS, 0, S(be)>>>(F(work), F(work), P, N, scale, true);
    LAUNCHED("attention dS");
    if (dq) gemm_rm(be, false, true, Cn, N, N, 1.0f, CF(k) + b * sx, N, F(work), N, 1.0f, F(dq) + b * sx, N);
    if (dk) gemm_rm(be, false, false, Cn, N, N, 1.0f, CF(q) + b * sx, N, F(work), N, 1.0f, F(dk) + b * sx, N);
  }
}

/* ---- embeddings ---- */

__global__ void k_timestep_embedding(float *y, const float *t, int B, int dim) {
  const int half = dim / 2;
  const float neg_log = (float)-log(10000.0);
  GRID_STRIDE(i, (size_t)B * half) {
    const int b = (int)(i / half), j = (int)(i % half);
    const float arg = t[b] * expf(neg_log * (float)j / (float)(half - 1));
    y[(size_t)b * dim + j] = sinf(arg);
    y[(size_t)b * dim + half + j] = cosf(arg);
  }
}

static void cu_timestep_embedding_forward(const Backend *be, BackendMem *y, const BackendMem *t, int B, int dim) {
  CHECK(dim % 2 == 0 && dim >= 4);
  k_timestep_embedding<<<blocks_for((size_t)B * dim / 2), THREADS, 0, S(be)>>>(F(y), CF(t), B, dim);
  LAUNCHED("timestep_embedding");
}

__global__ void k_embedding_lookup(float *y, const float *table, const int *labels, int B, int dim) {
  GRID_STRIDE(i, (size_t)B * dim) y[i] = table[(size_t)labels[i / dim] * dim + i % dim];
}

/* One thread per column, the batch in order: repeated labels accumulate without atomics. */
__global__ void k_embedding_lookup_backward(float *dtable, const float *dy, const int *labels, int B, int dim) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= dim) return;
  for (int b = 0; b < B; b++) dtable[(size_t)labels[b] * dim + j] += dy[(size_t)b * dim + j];
}

static void cu_embedding_lookup_forward(const Backend *be, BackendMem *y, const BackendMem *table,
                                        const BackendMem *labels, int B, int dim) {
  k_embedding_lookup<<<blocks_for((size_t)B * dim), THREADS, 0, S(be)>>>(F(y), CF(table), (const int *)labels, B, dim);
  LAUNCHED("embedding_lookup");
}

static void cu_embedding_lookup_backward(const Backend *be, BackendMem *dtable, const BackendMem *dy,
                                         const BackendMem *labels, int B, int dim) {
  k_embedding_lookup_backward<<<(dim + THREADS - 1) / THREADS, THREADS, 0, S(be)>>>(F(dtable), CF(dy),
                                                                                   (const int *)labels, B, dim);
  LAUNCHED("embedding_lookup backward");
}

/* ---- pointwise ---- */

__global__ void k_silu(float *y, const float *x, size_t n) { GRID_STRIDE(i, n) y[i] = silu_f(x[i]); }
__global__ void k_silu_backward(float *dx, const float *dy, const float *x, size_t n, bool overwrite) {
  GRID_STRIDE(i, n) {
    const float s = 1.0f / (1.0f + expf(-x[i])), d = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    dx[i] = overwrite ? d : dx[i] + d;
  }
}
__global__ void k_relu(float *y, const float *x, size_t n) { GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
__global__ void k_add(float *y, const float *a, const float *b, size_t n) { GRID_STRIDE(i, n) y[i] = a[i] + b[i]; }
__global__ void k_mul(float *y, const float *a, const float *b, size_t n) { GRID_STRIDE(i, n) y[i] = a[i] * b[i]; }
__global__ void k_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, size_t n) {
  GRID_STRIDE(i, n) {
    if (da) da[i] += dy[i] * b[i];
    if (db) db[i] += dy[i] * a[i];
  }
}
__global__ void k_scale_shift(float *y, const float *x, float alpha, float beta, size_t n) {
  GRID_STRIDE(i, n) y[i] = alpha * x[i] + beta;
}
__global__ void k_axpy(float *dx, const float *dy, float alpha, size_t n) { GRID_STRIDE(i, n) dx[i] += alpha * dy[i]; }
__global__ void k_axpby(float *y, float a, const float *x, float b, const float *z, size_t n) {
  GRID_STRIDE(i, n) y[i] = a * x[i] + b * z[i];
}
__global__ void k_add_channel(float *y, const float *x, const float *v, int HW, size_t n) {
  GRID_STRIDE(i, n) y[i] = x[i] + v[i / HW];
}
/* dv[bc] += sum over HW of dy: one thread per (b, c). */
__global__ void k_add_channel_backward(float *dv, const float *dy, int BC, int HW) {
  const int bc = blockIdx.x * blockDim.x + threadIdx.x;
  if (bc >= BC) return;
  double s = 0.0;
  for (int i = 0; i < HW; i++) s += dy[(size_t)bc * HW + i];
  dv[bc] += (float)s;
}
__global__ void k_concat(float *y, const float *a, const float *b, int Ca, int Cb, int HW, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t per = (size_t)(Ca + Cb) * HW, bi = i / per, r = i % per;
    y[i] = r < (size_t)Ca * HW ? a[bi * Ca * HW + r] : b[bi * Cb * HW + (r - (size_t)Ca * HW)];
  }
}
__global__ void k_concat_backward(float *da, float *db, const float *dy, int Ca, int Cb, int HW, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t per = (size_t)(Ca + Cb) * HW, bi = i / per, r = i % per;
    if (r < (size_t)Ca * HW) {
      if (da) da[bi * Ca * HW + r] += dy[i];
    } else if (db) {
      db[bi * Cb * HW + (r - (size_t)Ca * HW)] += dy[i];
    }
  }
}

#define POINTWISE(n) blocks_for(n), THREADS, 0, S(be)

static void cu_silu_forward(const Backend *be, BackendMem *y, const BackendMem *x, size_t n) {
  k_silu<<<POINTWISE(n)>>>(F(y), CF(x), n);
  LAUNCHED("silu");
}
static void cu_silu_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *x, size_t n) {
  k_silu_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), CF(x), n, false);
  LAUNCHED("silu backward");
}
static void cu_silu_backward_overwrite(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *x,
                                       size_t n) {
  k_silu_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), CF(x), n, true);
  LAUNCHED("silu backward");
}
static void cu_relu_forward(const Backend *be, BackendMem *y, const BackendMem *x, size_t n) {
  k_relu<<<POINTWISE(n)>>>(F(y), CF(x), n);
  LAUNCHED("relu");
}
static void cu_add_forward(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, size_t n) {
  k_add<<<POINTWISE(n)>>>(F(y), CF(a), CF(b), n);
  LAUNCHED("add");
}
static void cu_mul_forward(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b, size_t n) {
  k_mul<<<POINTWISE(n)>>>(F(y), CF(a), CF(b), n);
  LAUNCHED("mul");
}
static void cu_mul_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dy, const BackendMem *a,
                            const BackendMem *b, size_t n) {
  k_mul_backward<<<POINTWISE(n)>>>(F(da), F(db), CF(dy), CF(a), CF(b), n);
  LAUNCHED("mul backward");
}
static void cu_scale_forward(const Backend *be, BackendMem *y, const BackendMem *x, float alpha, size_t n) {
  k_scale_shift<<<POINTWISE(n)>>>(F(y), CF(x), alpha, 0.0f, n);
  LAUNCHED("scale");
}
static void cu_scale_shift(const Backend *be, BackendMem *y, const BackendMem *x, float alpha, float beta, size_t n) {
  k_scale_shift<<<POINTWISE(n)>>>(F(y), CF(x), alpha, beta, n);
  LAUNCHED("scale_shift");
}
static void cu_axpy_accumulate(const Backend *be, BackendMem *dx, const BackendMem *dy, float alpha, size_t n) {
  k_axpy<<<POINTWISE(n)>>>(F(dx), CF(dy), alpha, n);
  LAUNCHED("axpy");
}
static void cu_axpby(const Backend *be, BackendMem *y, float a, const BackendMem *x, float b, const BackendMem *z,
                     size_t n) {
  k_axpby<<<POINTWISE(n)>>>(F(y), a, CF(x), b, CF(z), n);
  LAUNCHED("axpby");
}
static void cu_add_channel_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *v, int BC,
                                   int HW) {
  k_add_channel<<<POINTWISE((size_t)BC * HW)>>>(F(y), CF(x), CF(v), HW, (size_t)BC * HW);
  LAUNCHED("add_channel");
}
static void cu_add_channel_backward(const Backend *be, BackendMem *dv, const BackendMem *dy, int BC, int HW) {
  k_add_channel_backward<<<(BC + THREADS - 1) / THREADS, THREADS, 0, S(be)>>>(F(dv), CF(dy), BC, HW);
  LAUNCHED("add_channel backward");
}
static void cu_concat_channels_forward(const Backend *be, BackendMem *y, const BackendMem *a, const BackendMem *b,
                                       int B, int Ca, int Cb, int HW) {
  const size_t n = (size_t)B * (Ca + Cb) * HW;
  k_concat<<<POINTWISE(n)>>>(F(y), CF(a), CF(b), Ca, Cb, HW, n);
  LAUNCHED("concat");
}
static void cu_concat_channels_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dy, int B,
                                        int Ca, int Cb, int HW) {
  const size_t n = (size_t)B * (Ca + Cb) * HW;
  k_concat_backward<<<POINTWISE(n)>>>(F(da), F(db), CF(dy), Ca, Cb, HW, n);
  LAUNCHED("concat backward");
}

__global__ void k_channel_slice(float *y, const float *x, int C, int c0, int nc, int HW, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t per = (size_t)nc * HW, b = i / per, r = i % per;
    y[i] = x[(b * C + c0) * HW + r];
  }
}
__global__ void k_channel_slice_backward(float *dx, const float *dy, int C, int c0, int nc, int HW, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t per = (size_t)nc * HW, b = i / per, r = i % per;
    dx[(b * C + c0) * HW + r] += dy[i];
  }
}
static void cu_channel_slice_forward(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int c0,
                                     int nc, int HW) {
  const size_t n = (size_t)B * nc * HW;
  k_channel_slice<<<POINTWISE(n)>>>(F(y), CF(x), C, c0, nc, HW, n);
  LAUNCHED("channel_slice");
}
static void cu_channel_slice_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int c0,
                                      int nc, int HW) {
  const size_t n = (size_t)B * nc * HW;
  k_channel_slice_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), C, c0, nc, HW, n);
  LAUNCHED("channel_slice backward");
}

/* ADM's attention-pool tokens (ops/elementwise.c): one thread per (b, c) row for the mean, one per
 * element otherwise; dpos sums over the batch in order (no atomics). */
__global__ void k_pool_tokens(float *y, const float *x, const float *pos, int C, int HW, size_t rows) {
  GRID_STRIDE(r, rows) {
    const int c = (int)(r % C), N = HW + 1;
    const float *xr = x + r * HW, *pr = pos + (size_t)c * N;
    float *yr = y + r * N;
    double mean = 0.0;
    for (int p = 0; p < HW; p++) mean += xr[p], yr[1 + p] = xr[p] + pr[1 + p];
    yr[0] = (float)(mean / HW) + pr[0];
  }
}
__global__ void k_pool_tokens_dx(float *dx, const float *dy, int HW, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t r = i / HW, p = i % HW;
    const float *dr = dy + r * (HW + 1);
    dx[i] += dr[0] / (float)HW + dr[1 + p];
  }
}
__global__ void k_pool_tokens_dpos(float *dpos, const float *dy, int B, int C, int HW) {
  const int N = HW + 1;
  GRID_STRIDE(i, (size_t)C * N) {
    const size_t c = i / N, j = i % N;
    float s = 0.0f;
    for (int b = 0; b < B; b++) s += dy[((size_t)b * C + c) * N + j];
    dpos[i] += s;
  }
}
static void cu_pool_tokens_forward(const Backend *be, BackendMem *y, const BackendMem *x, const BackendMem *pos, int B,
                                   int C, int HW) {
  const size_t rows = (size_t)B * C;
  k_pool_tokens<<<POINTWISE(rows)>>>(F(y), CF(x), CF(pos), C, HW, rows);
  LAUNCHED("pool_tokens");
}
static void cu_pool_tokens_backward(const Backend *be, BackendMem *dx, BackendMem *dpos, const BackendMem *dy, int B,
                                    int C, int HW) {
  const size_t n = (size_t)B * C * HW;
  if (dx) k_pool_tokens_dx<<<POINTWISE(n)>>>(F(dx), CF(dy), HW, n);
  if (dpos) k_pool_tokens_dpos<<<POINTWISE((size_t)C * (HW + 1))>>>(F(dpos), CF(dy), B, C, HW);
  LAUNCHED("pool_tokens backward");
}
__global__ void k_first_token(float *y, const float *x, int N, size_t n) {
  GRID_STRIDE(i, n) y[i] = x[i * N];
}
__global__ void k_first_token_backward(float *dx, const float *dy, int N, size_t n) {
  GRID_STRIDE(i, n) dx[i * N] += dy[i];
}
static void cu_first_token_forward(const Backend *be, BackendMem *y, const BackendMem *x, int B, int C, int N) {
  const size_t n = (size_t)B * C;
  k_first_token<<<POINTWISE(n)>>>(F(y), CF(x), N, n);
  LAUNCHED("first_token");
}
static void cu_first_token_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int C, int N) {
  const size_t n = (size_t)B * C;
  k_first_token_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), N, n);
  LAUNCHED("first_token backward");
}

/* ---- Philox4x32-10 (core/rng.c's counter scheme) ---- */

struct Bits4 {
  uint32_t v[4];
};

__device__ Bits4 philox(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  Bits4 b = {{c0, c1, c2, c3}};
  return b;
}

__device__ float unit_f(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

__global__ void k_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
  GRID_STRIDE(i, n) x[i] = unit_f(philox(seed, stream, offset + i).v[0]);
}

__global__ void k_fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
  GRID_STRIDE(i, n) {
    const Bits4 b = philox(seed, stream, offset + i);
    const double u1 = ((double)(b.v[0] >> 8) + 1.0) * (1.0 / 16777216.0), u2 = (double)b.v[1] * (1.0 / 4294967296.0);
    x[i] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
  }
}

/* elementwise.h's mask: element j = offset + i uses word j % 4 of philox(seed, stream, j / 4). */
__global__ void k_dropout(float *y, uint8_t *mask, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                          uint64_t offset) {
  const float keep_scale = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) {
    const uint64_t j = offset + i;
    const uint8_t keep = unit_f(philox(seed, stream, j / 4).v[j % 4]) >= p;
    mask[i] = keep;
    y[i] = keep ? x[i] * keep_scale : 0.0f;
  }
}

__global__ void k_dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p) {
  const float keep_scale = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) if (mask[i]) dx[i] += dy[i] * keep_scale;
}

static void cu_fill_normal(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
  k_fill_normal<<<POINTWISE(n)>>>(F(x), n, seed, stream, offset);
  LAUNCHED("fill_normal");
}
static void cu_fill_uniform(const Backend *be, BackendMem *x, size_t n, uint64_t seed, uint64_t stream,
                            uint64_t offset) {
  k_fill_uniform<<<POINTWISE(n)>>>(F(x), n, seed, stream, offset);
  LAUNCHED("fill_uniform");
}
static void cu_dropout_forward(const Backend *be, BackendMem *y, BackendMem *mask, const BackendMem *x, size_t n,
                               float p, uint64_t seed, uint64_t stream, uint64_t offset) {
  k_dropout<<<POINTWISE(n)>>>(F(y), (uint8_t *)mask, CF(x), n, p, seed, stream, offset);
  LAUNCHED("dropout");
}
static void cu_dropout_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *mask,
                                size_t n, float p) {
  k_dropout_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), (const uint8_t *)mask, n, p);
  LAUNCHED("dropout backward");
}

/* ---- resampling and pooling (gathers, no atomics) ---- */

__global__ void k_upsample(float *y, const float *x, int H, int W, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t p = i / ((size_t)4 * H * W), r = i % ((size_t)4 * H * W);
    const int h = (int)(r / (2 * W)), w = (int)(r % (2 * W));
    y[i] = x[p * H * W + (size_t)(h / 2) * W + w / 2];
  }
}
__global__ void k_upsample_backward(float *dx, const float *dy, int H, int W, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t p = i / ((size_t)H * W);
    const int h = (int)(i / W % H), w = (int)(i % W);
    const float *r0 = dy + p * 4 * H * W + (size_t)(2 * h) * 2 * W + 2 * w, *r1 = r0 + 2 * W;
    dx[i] += r0[0] + r0[1] + r1[0] + r1[1];
  }
}

__global__ void k_bilinear(float *y, const float *x, int H, int W, int Ho, int Wo, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t p = i / ((size_t)Ho * Wo);
    const int oh = (int)(i / Wo % Ho), ow = (int)(i % Wo);
    int h0, h1, w0, w1;
    float lh, lw;
    bilinear_source_index(oh, H, Ho, &h0, &h1, &lh);
    bilinear_source_index(ow, W, Wo, &w0, &w1, &lw);
    const float *xp = x + p * H * W;
    const float top = (1.0f - lw) * xp[h0 * W + w0] + lw * xp[h0 * W + w1];
    const float bot = (1.0f - lw) * xp[h1 * W + w0] + lw * xp[h1 * W + w1];
    y[i] = (1.0f - lh) * top + lh * bot;
  }
}

static void cu_upsample_nearest2x_forward(const Backend *be, BackendMem *y, const BackendMem *x, int BC, int H, int W) {
  const size_t n = (size_t)BC * 4 * H * W;
  k_upsample<<<POINTWISE(n)>>>(F(y), CF(x), H, W, n);
  LAUNCHED("upsample");
}
static void cu_upsample_nearest2x_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int BC, int H,
                                           int W) {
  const size_t n = (size_t)BC * H * W;
  k_upsample_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), H, W, n);
  LAUNCHED("upsample backward");
}
static void cu_bilinear_resize_forward(const Backend *be, BackendMem *y, const BackendMem *x, int BC, int H, int W,
                                       int Ho, int Wo) {
  const size_t n = (size_t)BC * Ho * Wo;
  k_bilinear<<<POINTWISE(n)>>>(F(y), CF(x), H, W, Ho, Wo, n);
  LAUNCHED("bilinear_resize");
}

__global__ void k_avg_pool(float *y, const float *x, Pool2dGeom g, int Ho, int Wo, bool include_pad, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t bc = i / ((size_t)Ho * Wo);
    const int oh = (int)(i / Wo % Ho), ow = (int)(i % Wo);
    int h0, h1, w0, w1;
    float div;
    avg_pool_window(&g, oh, ow, include_pad, &h0, &h1, &w0, &w1, &div);
    const float *xp = x + bc * g.H * g.W;
    float s = 0.0f;
    for (int h = h0; h < h1; h++)
      for (int w = w0; w < w1; w++) s += xp[h * g.W + w];
    y[i] = s / div;
  }
}

/* The outputs whose window (before clipping) holds input row h: oh in [lo, hi]. */
__device__ void windows_over(int h, int k, int stride, int pad, int Ho, int *lo, int *hi) {
  const int t = h + pad; /* oh * stride <= t < oh * stride + k */
  *lo = t - k + 1 <= 0 ? 0 : (t - k + 1 + stride - 1) / stride;
  *hi = min(t / stride, Ho - 1);
}

__global__ void k_avg_pool_backward(float *dx, const float *dy, Pool2dGeom g, int Ho, int Wo, bool include_pad,
                                    size_t n) {
  GRID_STRIDE(i, n) {
    const size_t bc = i / ((size_t)g.H * g.W);
    const int h = (int)(i / g.W % g.H), w = (int)(i % g.W);
    int ohl, ohh, owl, owh;
    windows_over(h, g.k, g.stride, g.pad, Ho, &ohl, &ohh);
    windows_over(w, g.k, g.stride, g.pad, Wo, &owl, &owh);
    float s = 0.0f;
    for (int oh = ohl; oh <= ohh; oh++)
      for (int ow = owl; ow <= owh; ow++) {
        int h0, h1, w0, w1;
        float div;
        avg_pool_window(&g, oh, ow, include_pad, &h0, &h1, &w0, &w1, &div);
        s += dy[bc * Ho * Wo + (size_t)oh * Wo + ow] / div;
      }
    dx[i] += s;
  }
}

__global__ void k_max_pool(float *y, int *argmax, const float *x, Pool2dGeom g, int Ho, int Wo, size_t n) {
  GRID_STRIDE(i, n) {
    const size_t bc = i / ((size_t)Ho * Wo);
    const int oh = (int)(i / Wo % Ho), ow = (int)(i % Wo);
    const int hs = oh * g.stride - g.pad, ws = ow * g.stride - g.pad;
    const float *xp = x + bc * g.H * g.W;
    float best = -INFINITY;
    int best_i = -1;
    for (int h = max(hs, 0); h < min(hs + g.k, g.H); h++)
      for (int w = max(ws, 0); w < min(ws + g.k, g.W); w++)
        if (best_i < 0 || xp[h * g.W + w] > best) best = xp[h * g.W + w], best_i = h * g.W + w;
    y[i] = best;
    if (argmax) argmax[i] = best_i;
  }
}

__global__ void k_max_pool_backward(float *dx, const float *dy, const int *argmax, Pool2dGeom g, int Ho, int Wo,
                                    size_t n) {
  GRID_STRIDE(i, n) {
    const size_t bc = i / ((size_t)g.H * g.W);
    const int h = (int)(i / g.W % g.H), w = (int)(i % g.W), me = h * g.W + w;
    int ohl, ohh, owl, owh;
    windows_over(h, g.k, g.stride, g.pad, Ho, &ohl, &ohh);
    windows_over(w, g.k, g.stride, g.pad, Wo, &owl, &owh);
    float s = 0.0f;
    for (int oh = ohl; oh <= ohh; oh++)
      for (int ow = owl; ow <= owh; ow++) {
        const size_t o = bc * Ho * Wo + (size_t)oh * Wo + ow;
        if (argmax[o] == me) s += dy[o];
      }
    dx[i] += s;
  }
}

__global__ void k_global_avg_pool(float *y, const float *x, int HW) {
  __shared__ double shared[THREADS];
  const size_t at = (size_t)blockIdx.x * HW;
  double s = 0.0;
  for (int i = threadIdx.x; i < HW; i += blockDim.x) s += x[at + i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) y[blockIdx.x] = (float)(s / HW);
}

__global__ void k_global_avg_pool_backward(float *dx, const float *dy, int HW, size_t n) {
  GRID_STRIDE(i, n) dx[i] += dy[i / HW] / (float)HW;
}

static void cu_avg_pool2d_forward(const Backend *be, BackendMem *y, const BackendMem *x, const Pool2dGeom *g,
                                  bool count_include_pad) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g);
  const size_t n = (size_t)g->B * g->C * Ho * Wo;
  k_avg_pool<<<POINTWISE(n)>>>(F(y), CF(x), *g, Ho, Wo, count_include_pad, n);
  LAUNCHED("avg_pool2d");
}
static void cu_avg_pool2d_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const Pool2dGeom *g,
                                   bool count_include_pad) {
  const size_t n = (size_t)g->B * g->C * g->H * g->W;
  k_avg_pool_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), *g, pool2d_out_h(g), pool2d_out_w(g), count_include_pad, n);
  LAUNCHED("avg_pool2d backward");
}
static void cu_max_pool2d_forward(const Backend *be, BackendMem *y, BackendMem *argmax, const BackendMem *x,
                                  const Pool2dGeom *g) {
  const int Ho = pool2d_out_h(g), Wo = pool2d_out_w(g);
  const size_t n = (size_t)g->B * g->C * Ho * Wo;
  k_max_pool<<<POINTWISE(n)>>>(F(y), (int *)argmax, CF(x), *g, Ho, Wo, n);
  LAUNCHED("max_pool2d");
}
static void cu_max_pool2d_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, const BackendMem *argmax,
                                   const Pool2dGeom *g) {
  const size_t n = (size_t)g->B * g->C * g->H * g->W;
  k_max_pool_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), (const int *)argmax, *g, pool2d_out_h(g), pool2d_out_w(g), n);
  LAUNCHED("max_pool2d backward");
}
static void cu_global_avg_pool_forward(const Backend *be, BackendMem *y, const BackendMem *x, int B, int Cn, int HW) {
  k_global_avg_pool<<<B * Cn, THREADS, 0, S(be)>>>(F(y), CF(x), HW);
  LAUNCHED("global_avg_pool");
}
static void cu_global_avg_pool_backward(const Backend *be, BackendMem *dx, const BackendMem *dy, int B, int Cn, int HW) {
  const size_t n = (size_t)B * Cn * HW;
  k_global_avg_pool_backward<<<POINTWISE(n)>>>(F(dx), CF(dy), HW, n);
  LAUNCHED("global_avg_pool backward");
}

/* ---- losses: one block (a fixed order), the scalar stays on the device ---- */

__global__ void k_mse(float *loss, const float *a, const float *b, size_t n) {
  __shared__ double shared[THREADS];
  double s = 0.0;
  for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double d = (double)a[i] - b[i];
    s += d * d;
  }
  s = block_sum(s, shared);
  if (threadIdx.x == 0) *loss = (float)(s / (double)n);
}

__global__ void k_mse_backward(float *da, float *db, const float *dloss, const float *a, const float *b, size_t n) {
  const float k = 2.0f * *dloss / (float)n;
  GRID_STRIDE(i, n) {
    const float g = k * (a[i] - b[i]);
    if (da) da[i] += g;
    if (db) db[i] -= g;
  }
}

__global__ void k_weighted_mse(float *loss, const float *a, const float *b, const float *w, int B, size_t M) {
  __shared__ double shared[THREADS];
  double total = 0.0;
  for (int s = 0; s < B; s++) {
    double part = 0.0;
    for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
      const double d = (double)a[(size_t)s * M + i] - b[(size_t)s * M + i];
      part += d * d;
    }
    total += w[s] * block_sum(part, shared) / (double)M;
  }
  if (threadIdx.x == 0) *loss = (float)(total / B);
}

__global__ void k_weighted_mse_backward(float *da, float *db, const float *dloss, const float *a, const float *b,
                                        const float *w, int B, size_t M) {
  GRID_STRIDE(i, (size_t)B * M) {
    const float g = 2.0f * *dloss * w[i / M] / ((float)B * (float)M) * (a[i] - b[i]);
    if (da) da[i] += g;
    if (db) db[i] -= g;
  }
}

static void cu_mse_forward(const Backend *be, BackendMem *loss, const BackendMem *a, const BackendMem *b, size_t n) {
  k_mse<<<1, THREADS, 0, S(be)>>>(F(loss), CF(a), CF(b), n);
  LAUNCHED("mse");
}
static void cu_mse_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dloss,
                            const BackendMem *a, const BackendMem *b, size_t n) {
  k_mse_backward<<<POINTWISE(n)>>>(F(da), F(db), CF(dloss), CF(a), CF(b), n);
  LAUNCHED("mse backward");
}
static void cu_weighted_mse_forward(const Backend *be, BackendMem *loss, const BackendMem *a, const BackendMem *b,
                                    const BackendMem *w, int B, size_t M) {
  k_weighted_mse<<<1, THREADS, 0, S(be)>>>(F(loss), CF(a), CF(b), CF(w), B, M);
  LAUNCHED("weighted_mse");
}
static void cu_weighted_mse_backward(const Backend *be, BackendMem *da, BackendMem *db, const BackendMem *dloss,
                                     const BackendMem *a, const BackendMem *b, const BackendMem *w, int B, size_t M) {
  k_weighted_mse_backward<<<POINTWISE((size_t)B * M)>>>(F(da), F(db), CF(dloss), CF(a), CF(b), CF(w), B, M);
  LAUNCHED("weighted_mse backward");
}

/* The classifier's cross-entropy: one block, rows in order (log-sum-exp shifted by the row's maximum). */
__device__ double row_log_sum_exp(const float *l, int K) {
  float mx = l[0];
  for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
  double s = 0.0;
  for (int k = 0; k < K; k++) s += exp((double)l[k] - mx);
  return mx + log(s);
}
__global__ void k_cross_entropy(float *loss, const float *logits, const int *labels, int B, int K) {
  __shared__ double shared[THREADS];
  double part = 0.0;
  for (int b = threadIdx.x; b < B; b += blockDim.x)
    part += row_log_sum_exp(logits + (size_t)b * K, K) - logits[(size_t)b * K + labels[b]];
  const double total = block_sum(part, shared);
  if (threadIdx.x == 0) *loss = (float)(total / B);
}
__global__ void k_cross_entropy_backward(float *dlogits, const float *dloss, const float *logits, const int *labels,
                                         int B, int K) {
  GRID_STRIDE(b, (size_t)B) {
    const float *l = logits + b * K;
    const double lse = row_log_sum_exp(l, K), dy = *dloss;
    for (int k = 0; k < K; k++) dlogits[b * K + k] += (float)(dy * (exp((double)l[k] - lse) - (k == labels[b])) / B);
  }
}
static void cu_cross_entropy_forward(const Backend *be, BackendMem *loss, const BackendMem *logits,
                                     const BackendMem *labels, int B, int K) {
  k_cross_entropy<<<1, THREADS, 0, S(be)>>>(F(loss), CF(logits), (const int *)labels, B, K);
  LAUNCHED("cross_entropy");
}
static void cu_cross_entropy_backward(const Backend *be, BackendMem *dlogits, const BackendMem *dloss,
                                      const BackendMem *logits, const BackendMem *labels, int B, int K) {
  k_cross_entropy_backward<<<POINTWISE((size_t)B)>>>(F(dlogits), CF(dloss), CF(logits), (const int *)labels, B, K);
  LAUNCHED("cross_entropy backward");
}

/* The learned-variance bound: one block per sample sums its terms (gaussian_vlb_element, as the CPU
 * kernel of ops/loss.c), then one thread forms the weighted mean in sample order. */
__global__ void k_vlb_terms(float *terms, const float *net, const float *xt, const float *x0, const float *coef,
                            size_t M) {
  __shared__ double shared[THREADS];
  const size_t b = blockIdx.x;
  const float *c = coef + b * VLB_COEFS, *F = net + b * 2 * M, *v = F + M, *xb = xt + b * M, *x0b = x0 + b * M;
  double part = 0.0;
  for (size_t i = threadIdx.x; i < M; i += blockDim.x)
    part += gaussian_vlb_element(c, F[i], v[i], xb[i], x0b[i], NULL, NULL);
  const double total = block_sum(part, shared);
  if (threadIdx.x == 0) terms[b] = (float)(total / (double)M / M_LN2);
}
__global__ void k_vlb_loss(float *loss, const float *terms, const float *coef, int B) {
  double total = 0.0;
  for (int b = 0; b < B; b++) total += (double)coef[(size_t)b * VLB_COEFS + VLB_WEIGHT] * terms[b];
  *loss = (float)(total / B);
}
__global__ void k_vlb_backward(float *dnet, const float *dloss, const float *net, const float *xt, const float *x0,
                               const float *coef, int B, size_t M, bool grad_mean) {
  GRID_STRIDE(k, (size_t)B * M) {
    const size_t b = k / M, i = k % M;
    const float *c = coef + b * VLB_COEFS, *F = net + b * 2 * M;
    double gF, gv;
    gaussian_vlb_element(c, F[i], F[M + i], xt[k], x0[k], &gF, &gv);
    const double scale = (double)*dloss * c[VLB_WEIGHT] / ((double)B * (double)M * M_LN2);
    if (grad_mean) dnet[b * 2 * M + i] += (float)(scale * gF);
    dnet[b * 2 * M + M + i] += (float)(scale * gv);
  }
}
static void cu_vlb_forward(const Backend *be, BackendMem *loss, BackendMem *terms, const BackendMem *net,
                           const BackendMem *xt, const BackendMem *x0, const BackendMem *coef, int B, int C, int HW) {
  k_vlb_terms<<<B, THREADS, 0, S(be)>>>(F(terms), CF(net), CF(xt), CF(x0), CF(coef), (size_t)C * HW);
  LAUNCHED("vlb terms");
  k_vlb_loss<<<1, 1, 0, S(be)>>>(F(loss), CF(terms), CF(coef), B);
  LAUNCHED("vlb loss");
}
static void cu_vlb_backward(const Backend *be, BackendMem *dnet, const BackendMem *dloss, const BackendMem *net,
                            const BackendMem *xt, const BackendMem *x0, const BackendMem *coef, int B, int C, int HW,
                            bool grad_mean) {
  k_vlb_backward<<<POINTWISE((size_t)B * C * HW)>>>(F(dnet), CF(dloss), CF(net), CF(xt), CF(x0), CF(coef), B,
                                                     (size_t)C * HW, grad_mean);
  LAUNCHED("vlb backward");
}

/* ---- the forward process ---- */

__global__ void k_forward_mix(float *xt, float *target, const float *x0, const float *noise, const float *coef,
                              size_t M, size_t n) {
  GRID_STRIDE(i, n) {
    const float *c = coef + 4 * (i / M);
    xt[i] = c[0] * x0[i] + c[1] * noise[i];
    target[i] = c[3] * noise[i] + c[2] * x0[i];
  }
}

static void cu_forward_mix(const Backend *be, BackendMem *xt, BackendMem *target, const BackendMem *x0,
                           const BackendMem *noise, const BackendMem *coef, int B, size_t M) {
  k_forward_mix<<<POINTWISE((size_t)B * M)>>>(F(xt), F(target), CF(x0), CF(noise), CF(coef), M, (size_t)B * M);
  LAUNCHED("forward_mix");
}

/* ---- the optimizer and its reductions ---- */

__global__ void k_adamw_ema(float *p, const float *g, float *m, float *v, float *ema, size_t n, float step_size,
                            float bc2_sqrt, float decay, float b1, float b2, float eps, float omb1, float omb2,
                            float grad_scale, float d, float omd) {
  GRID_STRIDE(i, n) {
    const float gi = g[i] * grad_scale;
    float pi = p[i] * decay;
    const float mi = b1 * m[i] + omb1 * gi, vi = b2 * v[i] + omb2 * gi * gi;
    pi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    p[i] = pi, m[i] = mi, v[i] = vi;
    if (ema) ema[i] = d * ema[i] + omd * pi;
  }
}

static void cu_optim_step(const Backend *be, BackendMem *p, const BackendMem *g, BackendMem *m, BackendMem *v,
                          BackendMem *ema, size_t n, const OptimStep *s) {
  const double bc1 = 1.0 - pow(s->beta1, (double)s->step), bc2 = 1.0 - pow(s->beta2, (double)s->step);
  k_adamw_ema<<<POINTWISE(n)>>>(F(p), CF(g), F(m), F(v), F(ema), n, (float)(s->lr / bc1), (float)sqrt(bc2),
                                (float)(1.0 - s->lr * s->weight_decay), (float)s->beta1, (float)s->beta2, (float)s->eps,
                                (float)(1.0 - s->beta1), (float)(1.0 - s->beta2), s->grad_scale, (float)s->ema_decay,
                                (float)(1.0 - s->ema_decay));
  LAUNCHED("optim_step");
}

#define REDUCE_BLOCKS 256

__global__ void k_sum_squares_partial(double *partials, const float *x, size_t n) {
  __shared__ double shared[THREADS];
  double s = 0.0;
  GRID_STRIDE(i, n) s += (double)x[i] * x[i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

static double cu_sum_squares(const Backend *be, const BackendMem *x, size_t n) {
  CudaCtx *c = C(be);
  k_sum_squares_partial<<<REDUCE_BLOCKS, THREADS, 0, c->stream>>>(c->partials, CF(x), n);
  LAUNCHED("sum_squares");
  double part[REDUCE_BLOCKS];
  cu_download(be, part, (const BackendMem *)c->partials, sizeof part);
  double s = 0.0;
  for (int i = 0; i < REDUCE_BLOCKS; i++) s += part[i]; /* fixed order: the same sum every time */
  return s;
}

__global__ void k_find_nonfinite(unsigned long long *first, const float *x, size_t n) {
  GRID_STRIDE(i, n) if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i); /* min: order-free */
}

static size_t cu_find_nonfinite(const Backend *be, const BackendMem *x, size_t n) {
  CudaCtx *c = C(be);
  const unsigned long long none = (unsigned long long)n;
  CK(cudaMemcpyAsync(c->index, &none, sizeof none, cudaMemcpyHostToDevice, c->stream));
  k_find_nonfinite<<<POINTWISE(n)>>>(c->index, CF(x), n);
  LAUNCHED("find_nonfinite");
  unsigned long long first;
  cu_download(be, &first, (const BackendMem *)c->index, sizeof first);
  return (size_t)first;
}

/* ---- the table ---- */

static BackendOps make_ops(void) {
  BackendOps o;
  memset(&o, 0, sizeof o);
  o.alloc = cu_alloc, o.free = cu_free, o.upload = cu_upload, o.download = cu_download, o.memset = cu_memset;
  o.copy = cu_copy, o.describe = cu_describe, o.set_threads = cu_set_threads;
  o.conv2d_work_floats = cu_conv2d_work_floats, o.conv2d_forward = cu_conv2d_forward;
  o.conv2d_backward = cu_conv2d_backward, o.gemm = cu_gemm;
  o.linear_forward = cu_linear_forward, o.linear_backward = cu_linear_backward;
  o.group_norm_forward = cu_group_norm_forward, o.group_norm_silu_forward = cu_group_norm_silu_forward;
  o.group_norm_backward = cu_group_norm_backward;
  o.attention_forward = cu_attention_forward, o.attention_backward_work_floats = cu_attention_backward_work_floats;
  o.attention_backward = cu_attention_backward;
  o.timestep_embedding_forward = cu_timestep_embedding_forward;
  o.embedding_lookup_forward = cu_embedding_lookup_forward, o.embedding_lookup_backward = cu_embedding_lookup_backward;
  o.silu_forward = cu_silu_forward, o.silu_backward = cu_silu_backward;
  o.silu_backward_overwrite = cu_silu_backward_overwrite, o.relu_forward = cu_relu_forward;
  o.softmax_forward = cu_softmax_forward, o.softmax_backward = cu_softmax_backward;
  o.add_forward = cu_add_forward, o.mul_forward = cu_mul_forward, o.mul_backward = cu_mul_backward;
  o.scale_forward = cu_scale_forward, o.scale_shift = cu_scale_shift, o.axpy_accumulate = cu_axpy_accumulate;
  o.axpby = cu_axpby, o.add_channel_forward = cu_add_channel_forward, o.add_channel_backward = cu_add_channel_backward;
  o.concat_channels_forward = cu_concat_channels_forward, o.concat_channels_backward = cu_concat_channels_backward;
  o.channel_slice_forward = cu_channel_slice_forward, o.channel_slice_backward = cu_channel_slice_backward;
  o.pool_tokens_forward = cu_pool_tokens_forward, o.pool_tokens_backward = cu_pool_tokens_backward;
  o.first_token_forward = cu_first_token_forward, o.first_token_backward = cu_first_token_backward;
  o.dropout_forward = cu_dropout_forward, o.dropout_backward = cu_dropout_backward;
  o.upsample_nearest2x_forward = cu_upsample_nearest2x_forward;
  o.upsample_nearest2x_backward = cu_upsample_nearest2x_backward;
  o.bilinear_resize_forward = cu_bilinear_resize_forward;
  o.avg_pool2d_forward = cu_avg_pool2d_forward, o.avg_pool2d_backward = cu_avg_pool2d_backward;
  o.max_pool2d_forward = cu_max_pool2d_forward, o.max_pool2d_backward = cu_max_pool2d_backward;
  o.global_avg_pool_forward = cu_global_avg_pool_forward, o.global_avg_pool_backward = cu_global_avg_pool_backward;
  o.mse_forward = cu_mse_forward, o.mse_backward = cu_mse_backward;
  o.weighted_mse_forward = cu_weighted_mse_forward, o.weighted_mse_backward = cu_weighted_mse_backward;
  o.cross_entropy_forward = cu_cross_entropy_forward, o.cross_entropy_backward = cu_cross_entropy_backward;
  o.vlb_forward = cu_vlb_forward, o.vlb_backward = cu_vlb_backward;
  o.forward_mix = cu_forward_mix, o.fill_normal = cu_fill_normal, o.fill_uniform = cu_fill_uniform;
  o.optim_step = cu_optim_step, o.sum_squares = cu_sum_squares, o.find_nonfinite = cu_find_nonfinite;
  return o;
}

static BackendOps g_ops;

extern "C" int backend_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError(); /* no driver or no GPU: not an error here */
    return 0;
  }
  return n;
}

extern "C" const Backend *backend_cuda_open(int device, char *err, size_t errlen) {
  const int n = backend_cuda_device_count();
  if (device < 0 || device >= n || device >= CUDA_MAX_DEVICES) {
    errorf(err, errlen, "device 'cuda:%d': this machine has %d CUDA device(s)%s", device, n,
           n ? "" : " (no GPU, or no NVIDIA driver); use --device cpu");
    return NULL;
  }
  if (g_open[device]) return &g_backend[device];
  CudaCtx *c = &g_ctx[device];
  c->device = device;
  CK(cudaSetDevice(device));
  CK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  CB(cublasCreate(&c->blas));
  CB(cublasSetStream(c->blas, c->stream));
  CB(cublasSetMathMode(c->blas, CUBLAS_PEDANTIC_MATH)); /* fp32, no TF32: results comparable with the CPU */
  CK(cudaMalloc(&c->partials, REDUCE_BLOCKS * sizeof(double)));
  CK(cudaMalloc(&c->index, sizeof(unsigned long long)));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, device));
  snprintf(c->name, sizeof c->name, "cuda:%d", device);
  snprintf(c->description, sizeof c->description, "%s (sm_%d%d, %.0f GiB), cuBLAS fp32, own kernels (unverified)",
           prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  g_ops = make_ops();
  g_backend[device].name = c->name;
  g_backend[device].ops = &g_ops;
  g_backend[device].ctx = c;
  g_open[device] = true;
  return &g_backend[device];
}
