/* conv2d.c - convolution via im2col + sgemm, several images per GEMM; 3x3 stride-1 pad-1
 * convolutions by Winograd instead (winograd.c: forward, input and weight gradients).
 *
 * A chunk of B images is folded into the GEMM's N dimension: with P = Ho*Wo and N = B*P, columns
 * are indexed b*P + p, K = Cin*kh*kw.
 * Forward:  Y (Cout, N) = W (Cout, K) x col (K, N), then scattered to out (B, Cout, P) (+ bias).
 * Backward: dY (Cout, N) gathered from dout; dW += dY x col^T. The input gradient of a stride-1
 * convolution is itself a convolution: dX = conv(dY, W flipped in space with Cin and Cout swapped,
 * padding kh-1-pad), computed as W' (Cin, Cout*kh*kw) x im2col(dY) with a long contraction and no
 * scatter-add (for a 1x1 convolution, W' = W^T and im2col(dY) is dY); strided convolutions use
 * dcol = W^T x dY and col2im, with W^T materialised so that every GEMM has an untransposed A (the
 * form the own GEMM kernel reads fastest). For a 1x1, stride-1, unpadded convolution col is the input
 * itself, regrouped.
 * Chunk sizes (measured on the CIFAR-10 U-Net, 2 cores): about 1024 columns per GEMM, where the
 * operands stay cache-sized, except for a forward with threads inside each GEMM, which folds up to
 * 8192 (the whole batch of 8 at 32x32: sampling 600 -> 474 ms per forward before image threads).
 * Threads: when the batch splits evenly over the OpenMP threads (or is large), each thread takes
 * its own images with its own slice of `work` and single-threaded GEMMs (OpenBLAS runs one thread
 * inside a parallel region), and the weight gradients of the threads are summed at the end: one
 * parallel region per call instead of one per GEMM and copy (CIFAR-10 U-Net, batch 8, 2 threads:
 * training step 1490 -> 1345 ms, sampling forward 475 -> 390 ms). Otherwise every GEMM and copy is
 * threaded on its own.
 */
#include "ops/conv2d.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/gemm.h"
#include "ops/winograd.h"

#define SHARED_FORWARD_COLUMNS 8192 /* forward with threads inside each GEMM */
#define COLUMNS 1024                /* backward, and forward with a thread per image range */

static int is_pointwise(const Conv2dGeom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_top == 0 && g->pad_bottom == 0 &&
         g->pad_left == 0 && g->pad_right == 0;
}

/* Stride 1 with padding below the kernel size: the input gradient is a convolution of dY (for a
 * 1x1 convolution W' is W^T). */
static int backward_as_convolution(const Conv2dGeom *g) {
  return g->sh == 1 && g->sw == 1 && g->pad_top < g->kh && g->pad_bottom < g->kh && g->pad_left < g->kw &&
         g->pad_right < g->kw;
}

/* The geometry of dX = conv(dY, W'): dY as input, Cin outputs, complementary padding. */
static Conv2dGeom transposed_geom(const Conv2dGeom *g) {
  Conv2dGeom t = *g;
  t.Cin = g->Cout, t.Cout = g->Cin, t.H = conv2d_out_h(g), t.W = conv2d_out_w(g);
  t.pad_top = g->kh - 1 - g->pad_top, t.pad_bottom = g->kh - 1 - g->pad_bottom;
  t.pad_left = g->kw - 1 - g->pad_left, t.pad_right = g->kw - 1 - g->pad_right;
  return t;
}

/* Images per GEMM: enough for about `columns` columns, at least one, at most B. */
static int images_per_gemm(const Conv2dGeom *g, int columns) {
  const int P = conv2d_out_h(g) * conv2d_out_w(g), n = P >= columns ? 1 : (columns + P - 1) / P;
  return n < g->B ? n : g->B;
}

static int forward_columns(int threads) { return threads > 1 ? COLUMNS : SHARED_FORWARD_COLUMNS; }

static size_t forward_work(const Conv2dGeom *g, int threads) {
  const size_t N = (size_t)images_per_gemm(g, forward_columns(threads)) * conv2d_out_h(g) * conv2d_out_w(g);
  return ((size_t)g->Cin * g->kh * g->kw + (size_t)g->Cout) * N;
}

/* dY folded (Cout, N), col (rows, N) for both im2col(x) and im2col(dY), dX folded (Cin, N). */
static size_t backward_work(const Conv2dGeom *g) {
  const size_t N = (size_t)images_per_gemm(g, COLUMNS) * conv2d_out_h(g) * conv2d_out_w(g);
  const size_t khw = (size_t)g->kh * g->kw, K = g->Cin * khw, Kt = g->Cout * khw;
  return (size_t)g->Cout * N + (K > Kt ? K : Kt) * N + (size_t)g->Cin * N;
}

/* Threads that take images of their own (1: threads work inside each GEMM instead). */
static int image_threads(const Conv2dGeom *g) {
#ifdef _OPENMP
  const int t = omp_in_parallel() ? 1 : omp_get_max_threads();
  return t > 1 && g->B >= t && (g->B % t == 0 || g->B >= 4 * t) ? t : 1;
#else
  return 1;
#endif
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; } /* keeps slices 64-byte aligned */
static size_t weight_floats(const Conv2dGeom *g) { return (size_t)g->Cout * g->Cin * g->kh * g->kw; }

/* work = [W'] [Winograd kernel] (shared) [slice of thread 0] [slice of thread 1] ...; a slice holds
 * the chunk work (the largest of forward, backward and Winograd) and, with image threads, the
 * thread's dW and dbias sums. */
typedef struct {
  float *w_grad, *winograd_kernel; /* w_grad: W' or W^T, see input_grad_chunk */
} SharedWork;
typedef struct {
  float *chunk, *dw_sum, *dbias_sum, *winograd_dw; /* winograd_dw: weight gradient accumulator */
} ThreadSlice;

/* A Winograd kernel for U / U' (shared; U' has U's size) and the weight-gradient sums (per thread). */
static size_t winograd_kernel_slot(const Conv2dGeom *g) {
  return winograd_applies(g) ? round16(winograd_kernel_floats(g)) : 0;
}

static size_t winograd_weight_grad_slot(const Conv2dGeom *g) {
  return winograd_applies(g) ? round16(winograd_weight_grad_floats(g)) : 0;
}

/* W' or W^T, for the im2col input gradient (Winograd convolutions transform W directly) */
static size_t w_grad_slot(const Conv2dGeom *g) { return winograd_applies(g) ? 0 : round16(weight_floats(g)); }

static size_t shared_floats(const Conv2dGeom *g) { return w_grad_slot(g) + winograd_kernel_slot(g); }

static SharedWork shared_work(const Conv2dGeom *g, float *work) {
  const SharedWork s = {work, work + w_grad_slot(g)};
  return s;
}

/* Winograd convolutions never reach the im2col paths, so they reserve only Winograd's work. */
static size_t chunk_floats(const Conv2dGeom *g, int threads) {
  if (winograd_applies(g)) {
    const Conv2dGeom t = transposed_geom(g);
    const size_t wf = winograd_chunk_floats(g), wb = winograd_chunk_floats(&t);
    return round16(wf > wb ? wf : wb);
  }
  const size_t f = forward_work(g, threads), b = backward_work(g);
  return round16(f > b ? f : b);
}

static size_t slice_floats(const Conv2dGeom *g, int threads) {
  return chunk_floats(g, threads) + round16(weight_floats(g)) + round16((size_t)g->Cout) +
         winograd_weight_grad_slot(g);
}

static ThreadSlice thread_slice(const Conv2dGeom *g, float *work, int tid, int threads) {
  ThreadSlice s;
  s.chunk = work + shared_floats(g) + (size_t)tid * slice_floats(g, threads);
  s.dw_sum = s.chunk + chunk_floats(g, threads);
  s.dbias_sum = s.dw_sum + round16(weight_floats(g));
  s.winograd_dw = s.dbias_sum + round16((size_t)g->Cout);
  return s;
}

size_t conv2d_work_floats(const Conv2dGeom *g) {
  const int threads = image_threads(g);
  return shared_floats(g) + (size_t)threads * slice_floats(g, threads);
}

/* col (K, N) from in (B, Cin, H, W); parallel over rows r = (c, ki, kj) of K. */
static void im2col(float *col, const float *in, const Conv2dGeom *g, int Ho, int Wo) {
  const int K = g->Cin * g->kh * g->kw, P = Ho * Wo;
  const size_t N = (size_t)g->B * P, image = (size_t)g->Cin * g->H * g->W;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < K; r++) {
    const int c = r / (g->kh * g->kw), ki = (r / g->kw) % g->kh, kj = r % g->kw;
    for (int b = 0; b < g->B; b++) {
      const float *src = in + (size_t)b * image + (size_t)c * g->H * g->W;
      float *dst = col + (size_t)r * N + (size_t)b * P;
      for (int oh = 0; oh < Ho; oh++) {
        const int ih = oh * g->sh - g->pad_top + ki;
        float *row = dst + (size_t)oh * Wo;
        if (ih < 0 || ih >= g->H) {
          memset(row, 0, sizeof(float) * Wo);
          continue;
        }
        const float *srow = src + (size_t)ih * g->W;
        if (g->sw == 1 && kj - g->pad_left >= 0 && Wo - 1 + kj - g->pad_left < g->W) {
          memcpy(row, srow + kj - g->pad_left, sizeof(float) * Wo); /* interior: a plain copy */
          continue;
        }
        for (int ow = 0; ow < Wo; ow++) {
          const int iw = ow * g->sw - g->pad_left + kj;
          row[ow] = (iw >= 0 && iw < g->W) ? srow[iw] : 0.0f;
        }
      }
    }
  }
}

/* din (B, Cin, H, W) += col2im(col (K, N)); parallel over (b, c) so no two threads write the same element. */
static void col2im_add(float *din, const float *col, const Conv2dGeom *g, int Ho, int Wo) {
  const int khw = g->kh * g->kw, P = Ho * Wo;
  const size_t N = (size_t)g->B * P;
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < g->B; b++)
    for (int c = 0; c < g->Cin; c++) {
      float *dst = din + ((size_t)b * g->Cin + c) * g->H * g->W;
      for (int k = 0; k < khw; k++) {
        const int ki = k / g->kw, kj = k % g->kw;
        const float *src = col + ((size_t)c * khw + k) * N + (size_t)b * P;
        for (int oh = 0; oh < Ho; oh++) {
          const int ih = oh * g->sh - g->pad_top + ki;
          if (ih < 0 || ih >= g->H) continue;
          float *drow = dst + (size_t)ih * g->W;
          const float *srow = src + (size_t)oh * Wo;
          for (int ow = 0; ow < Wo; ow++) {
            const int iw = ow * g->sw - g->pad_left + kj;
            if (iw >= 0 && iw < g->W) drow[iw] += srow[ow];
          }
        }
      }
    }
}

/* folded (C, B*P) = x (B, C, P) regrouped */
static void fold(float *folded, const float *x, int B, int C, int P) {
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      memcpy(folded + (size_t)c * B * P + (size_t)b * P, x + ((size_t)b * C + c) * P, sizeof(float) * P);
}

/* x (B, C, P) += folded (C, B*P) + bias[c] (bias may be NULL); with accumulate false, x = ... */
static void unfold(float *x, const float *folded, const float *bias, int B, int C, int P, bool accumulate) {
#pragma omp parallel for schedule(static) collapse(2)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      const float *src = folded + (size_t)c * B * P + (size_t)b * P;
      float *dst = x + ((size_t)b * C + c) * P;
      const float bc = bias ? bias[c] : 0.0f;
      if (accumulate)
        for (int p = 0; p < P; p++) dst[p] += src[p] + bc;
      else
        for (int p = 0; p < P; p++) dst[p] = src[p] + bc;
    }
}

/* W^T (Cin*kh*kw, Cout) */
static void transpose_weights(float *wt, const float *w, const Conv2dGeom *g) {
  const int K = g->Cin * g->kh * g->kw;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < K; r++)
    for (int o = 0; o < g->Cout; o++) wt[(size_t)r * g->Cout + o] = w[(size_t)o * K + r];
}

/* W' (Cin, Cout*kh*kw): W' [c][o][k] = W [o][c][kh*kw-1-k] */
static void flip_weights(float *wt, const float *w, const Conv2dGeom *g) {
  const int khw = g->kh * g->kw;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < g->Cin; c++)
    for (int o = 0; o < g->Cout; o++)
      for (int k = 0; k < khw; k++)
        wt[((size_t)c * g->Cout + o) * khw + k] = w[((size_t)o * g->Cin + c) * khw + khw - 1 - k];
}

/* The batch is processed in chunks of images (sub-geometries with B = chunk). */
static void forward_chunk(float *out, const float *in, const float *w, const float *bias, const Conv2dGeom *g,
                          float *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int N = g->B * P;
  const bool single = g->B == 1; /* (C, 1*P) is (1, C, P): no regrouping */
  float *col = work, *y = single ? out : work + (size_t)K * N;
  const float *cols = col;
  if (is_pointwise(g) && single) cols = in;
  else if (is_pointwise(g)) fold(col, in, g->B, g->Cin, P);
  else im2col(col, in, g, Ho, Wo);
  gemm(false, false, g->Cout, N, K, 1.0f, w, K, cols, N, 0.0f, y, N);
  if (!single) unfold(out, y, bias, g->B, g->Cout, P, false);
  else if (bias) unfold(out, out, bias, 1, g->Cout, P, false);
}

/* din += dX of one chunk. w_grad is the weight matrix of the input-gradient GEMM: W' (Cin,
 * Cout*kh*kw) when the gradient is a convolution of dY, else W^T (Cin*kh*kw, Cout) for dcol = W^T dY
 * and col2im. */
static void input_grad_chunk(float *din, const float *dout, const float *dy, const float *w_grad,
                             const Conv2dGeom *g, float *col, float *dx_folded) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int N = g->B * P, HW = g->H * g->W;
  const bool single = g->B == 1;
  if (backward_as_convolution(g)) {
    const Conv2dGeom t = transposed_geom(g);
    const int Kt = g->Cout * g->kh * g->kw, Nx = g->B * HW;
    const float *cols = col;
    if (is_pointwise(g) && single) cols = dout;
    else im2col(col, dout, &t, g->H, g->W);
    gemm(false, false, g->Cin, Nx, Kt, 1.0f, w_grad, Kt, cols, Nx, single ? 1.0f : 0.0f, single ? din : dx_folded, Nx);
    if (!single) unfold(din, dx_folded, NULL, g->B, g->Cin, HW, true);
    return;
  }
  gemm(false, false, K, N, g->Cout, 1.0f, w_grad, g->Cout, dy, N, 0.0f, col, N);
  col2im_add(din, col, g, Ho, Wo);
}

static void backward_chunk(float *din, float *dw, const float *dout, const float *in, const float *w_grad,
                           const Conv2dGeom *g, float *work) {
  const int Ho = conv2d_out_h(g), Wo = conv2d_out_w(g), P = Ho * Wo, K = g->Cin * g->kh * g->kw;
  const int N = g->B * P, khw = g->kh * g->kw, Kt = g->Cout * khw;
  const bool single = g->B == 1;
  float *dy_folded = work, *col = dy_folded + (size_t)g->Cout * N;
  float *dx_folded = col + (size_t)(K > Kt ? K : Kt) * N;
  const float *dy = dout;
  if (!single && (dw || (din && !backward_as_convolution(g)))) {
    fold(dy_folded, dout, g->B, g->Cout, P);
    dy = dy_folded;
  }
  if (dw) {
    const float *cols = col;
    if (is_pointwise(g) && single) cols = in;
    else if (is_pointwise(g)) fold(col, in, g->B, g->Cin, P);
    else im2col(col, in, g, Ho, Wo);
    gemm(false, true, g->Cout, K, N, 1.0f, dy, N, cols, N, 1.0f, dw, K);
  }
  if (din) input_grad_chunk(din, dout, dy, w_grad, g, col, dx_folded);
}

/* Images [*b0, *b1) of thread `tid` out of `threads`. */
static void thread_images(const Conv2dGeom *g, int tid, int threads, int *b0, int *b1) {
  *b0 = (int)((long)g->B * tid / threads);
  *b1 = (int)((long)g->B * (tid + 1) / threads);
}

static int thread_id(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/* Images [b0, b1) in chunks; with a Winograd kernel U, by winograd_images. */
static void forward_images(float *out, const float *in, const float *w, const float *U, const float *bias,
                           const Conv2dGeom *g, int b0, int b1, int threads, float *work) {
  const int step = U ? winograd_images_per_chunk(g) : images_per_gemm(g, forward_columns(threads));
  const size_t in_image = (size_t)g->Cin * g->H * g->W, out_image = (size_t)g->Cout * conv2d_out_h(g) * conv2d_out_w(g);
  for (int b = b0; b < b1; b += step) {
    Conv2dGeom sub = *g;
    sub.B = b1 - b < step ? b1 - b : step;
    if (U) winograd_images(out + b * out_image, in + b * in_image, U, bias, &sub, false, work);
    else forward_chunk(out + b * out_image, in + b * in_image, w, bias, &sub, work);
  }
}

void conv2d_forward(float *out, const float *in, const float *w, const float *bias, const Conv2dGeom *g,
                    float *work) {
  const int threads = image_threads(g);
  float *U = NULL;
  if (winograd_applies(g)) {
    U = shared_work(g, work).winograd_kernel;
    winograd_transform_kernel(U, w, g);
  }
  if (threads == 1) {
    forward_images(out, in, w, U, bias, g, 0, g->B, 1, thread_slice(g, work, 0, 1).chunk);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int tid = thread_id();
    int b0, b1;
    thread_images(g, tid, threads, &b0, &b1);
    forward_images(out, in, w, U, bias, g, b0, b1, threads, thread_slice(g, work, tid, threads).chunk);
  }
}

/* dbias += the sums of dY over images [b0, b1) (threaded unless inside image threads) */
static void bias_grad_images(float *dbias, const float *dout, const Conv2dGeom *g, int b0, int b1) {
  const int P = conv2d_out_h(g) * conv2d_out_w(g);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < g->Cout; o++) {
    double s = 0.0;
    for (int b = b0; b < b1; b++) {
      const float *d = dout + ((size_t)b * g->Cout + o) * P;
#pragma omp simd reduction(+ : s)
      for (int p = 0; p < P; p++) s += d[p];
    }
    dbias[o] += (float)s;
  }
}

/* Images [b0, b1) in chunks. dbias straight from dY. 3x3 pad-1 convolutions use Winograd for the
 * weight gradient (accumulated in winograd_dw) and, given U_flipped (the Winograd kernel of W'), the
 * input gradient; everything else goes through backward_chunk. */
static void backward_images(float *din, float *dw, float *dbias, const float *dout, const float *in,
                            const float *w_grad, const float *U_flipped, const Conv2dGeom *g, int b0, int b1,
                            float *work, float *winograd_dw) {
  const size_t in_image = (size_t)g->Cin * g->H * g->W, out_image = (size_t)g->Cout * conv2d_out_h(g) * conv2d_out_w(g);
  const bool winograd = winograd_applies(g);
  float *din_gemm = U_flipped ? NULL : din, *dw_gemm = winograd ? NULL : dw;
  if (dbias) bias_grad_images(dbias, dout, g, b0, b1);
  if (dw_gemm || din_gemm) {
    const int step = images_per_gemm(g, COLUMNS);
    for (int b = b0; b < b1; b += step) {
      Conv2dGeom sub = *g;
      sub.B = b1 - b < step ? b1 - b : step;
      backward_chunk(din_gemm ? din_gemm + b * in_image : NULL, dw_gemm, dout + b * out_image, in + b * in_image,
                     w_grad, &sub, work);
    }
  }
  if (winograd && dw && b1 > b0) {
    const int step = winograd_weight_grad_images_per_chunk(g);
    for (int b = b0; b < b1; b += step) {
      Conv2dGeom sub = *g;
      sub.B = b1 - b < step ? b1 - b : step;
      winograd_weight_grad_images(winograd_dw, dout + b * out_image, in + b * in_image, &sub, b == b0, work);
    }
    winograd_weight_grad_finish(dw, winograd_dw, g);
  }
  if (!din || !U_flipped) return;
  const Conv2dGeom t = transposed_geom(g);
  const int step = winograd_images_per_chunk(&t);
  for (int b = b0; b < b1; b += step) {
    Conv2dGeom sub = t;
    sub.B = b1 - b < step ? b1 - b : step;
    winograd_images(din + b * in_image, dout + b * out_image, U_flipped, NULL, &sub, true, work);
  }
}

/* dst[e] += sum over threads of their sums, for this thread's share of the elements */
static void add_thread_sums(float *dst, size_t n, const Conv2dGeom *g, float *work, int threads, int tid,
                            bool bias) {
  const size_t e0 = n * tid / threads, e1 = n * (tid + 1) / threads;
  for (int t = 0; t < threads; t++) {
    const ThreadSlice s = thread_slice(g, work, t, threads);
    const float *src = bias ? s.dbias_sum : s.dw_sum;
    for (size_t e = e0; e < e1; e++) dst[e] += src[e];
  }
}

void conv2d_backward(float *din, float *dw, float *dbias, const float *dout, const float *in, const float *w,
                     const Conv2dGeom *g, float *work) {
  const int threads = image_threads(g);
  const SharedWork shared = shared_work(g, work);
  float *w_grad = NULL, *U_flipped = NULL;
  if (din && winograd_applies(g)) { /* then so does the transposed geometry */
    U_flipped = shared.winograd_kernel;
    winograd_transform_kernel_flipped(U_flipped, w, g);
  } else if (din && backward_as_convolution(g)) {
    w_grad = shared.w_grad;
    flip_weights(w_grad, w, g);
  } else if (din) {
    w_grad = shared.w_grad;
    transpose_weights(w_grad, w, g);
  }
  if (threads == 1) {
    const ThreadSlice s = thread_slice(g, work, 0, 1);
    backward_images(din, dw, dbias, dout, in, w_grad, U_flipped, g, 0, g->B, s.chunk, s.winograd_dw);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int tid = thread_id();
    const ThreadSlice s = thread_slice(g, work, tid, threads);
    if (dw) memset(s.dw_sum, 0, weight_floats(g) * sizeof(float));
    if (dbias) memset(s.dbias_sum, 0, g->Cout * sizeof(float));
    int b0, b1;
    thread_images(g, tid, threads, &b0, &b1);
    backward_images(din, dw ? s.dw_sum : NULL, dbias ? s.dbias_sum : NULL, dout, in, w_grad, U_flipped, g, b0, b1,
                    s.chunk, s.winograd_dw);
#pragma omp barrier
    if (dw) add_thread_sums(dw, weight_floats(g), g, work, threads, tid, false);
    if (dbias) add_thread_sums(dbias, g->Cout, g, work, threads, tid, true);
  }
}
