/* test_bf16.c - the bf16 convolution (ops/conv2d_bf16.h) and the bf16 CPU backend against references,
 * with tolerances derived from the rounding, not tuned:
 *   - bf16_from_float rounds to nearest, ties to even (checked against the definition);
 *   - against the same convolution in double of the bf16-rounded operands, the kernel's only error is
 *     its fp32 accumulation: at most 2 roundings (a pair of products, then the sum) per pair of the K
 *     terms plus the bias's, |y - ref| <= (K + 2) 2^-24 sum |w x| + 2^-24 |bias|;
 *   - against the fp32 convolution of the unrounded operands, each operand is off by at most 2^-8
 *     relative (bf16 keeps 8 significant bits), a product by 2^-7 + 2^-16: |y - ref| <= (2^-7 + 2^-16 +
 *     (K + 2) 2^-24) sum |w x| + 2^-24 |bias|.
 * Geometries cover both ways of packing columns (one output row at stride 1: masked loads; otherwise
 * gathers), padding, strides, K and Cout that are not multiples of 32 and N that is not one of 16.
 * Both kernels (AMX; AVX512-BF16, forced with DIFFUSE_BF16_KERNEL=avx512bf16 where AMX exists) run
 * them; on a CPU with neither the convolution checks are skipped (77) after the rounding check. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "ops/conv2d_bf16.h"
#include "test_util.h"

static double rounded(float x) { return bf16_to_float(bf16_from_float(x)); }

static void check_rounding(void) {
  EXPECT(bf16_from_float(1.0f) == 0x3f80, "1.0 -> %04x", bf16_from_float(1.0f));
  EXPECT(bf16_from_float(1.0f + 0x1p-8f) == 0x3f80, "1 + 2^-8 (a tie) -> %04x, want the even 3f80",
         bf16_from_float(1.0f + 0x1p-8f));
  EXPECT(bf16_from_float(1.0f + 3 * 0x1p-8f) == 0x3f82, "1 + 3 2^-8 (a tie) -> %04x, want the even 3f82",
         bf16_from_float(1.0f + 3 * 0x1p-8f));
  EXPECT(bf16_from_float(-INFINITY) == 0xff80, "-inf -> %04x", bf16_from_float(-INFINITY));
  EXPECT(isnan(bf16_to_float(bf16_from_float(NAN))), "NaN -> %04x", bf16_from_float(NAN));
  enum { N = 100000 };
  float *x = malloc(N * sizeof(float));
  rng_fill_normal(x, N, 5, 0, 0);
  int bad = 0;
  for (int i = 0; i < N; i++) { /* the nearest of the two bf16 neighbours, the even one on a tie */
    const float v = x[i] * 1e3f;
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    const uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    const double dlo = fabs(v - (double)bf16_to_float(lo)), dhi = fabs(v - (double)bf16_to_float(hi));
    const uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1 ? hi : lo);
    bad += bf16_from_float(v) != want;
  }
  EXPECT(bad == 0, "%d of %d values not rounded to the nearest bf16", bad, N);
  free(x);
}

typedef struct {
  int B, Cin, H, W, Cout, k, stride, pad;
  bool bias;
} Case;

/* Returns the largest |error| / bound over both references (must be <= 1). */
static double check_conv(const Case *c, const Backend *be) {
  const Conv2dGeom g = {.B = c->B, .Cin = c->Cin, .H = c->H, .W = c->W, .Cout = c->Cout, .kh = c->k, .kw = c->k,
                        .sh = c->stride, .sw = c->stride, .pad_top = c->pad, .pad_bottom = c->pad,
                        .pad_left = c->pad, .pad_right = c->pad};
  const int Ho = conv2d_out_h(&g), Wo = conv2d_out_w(&g), K = c->Cin * c->k * c->k;
  const size_t nx = (size_t)c->B * c->Cin * c->H * c->W, nw = (size_t)c->Cout * K, ny = (size_t)c->B * c->Cout * Ho * Wo;
  float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *bias = malloc(c->Cout * sizeof(float));
  float *y = malloc(ny * sizeof(float));
  rng_fill_normal(x, nx, 11, 0, 0);
  rng_fill_normal(w, nw, 11, 1, 0);
  rng_fill_normal(bias, c->Cout, 11, 2, 0);
  for (size_t i = 0; i < nw; i++) w[i] /= sqrtf((float)K);
  /* through the backend: the weights uploaded, packed at the first forward */
  BackendMem *bx = be->ops->alloc(be, nx * 4), *bw = be->ops->alloc(be, nw * 4), *bb = be->ops->alloc(be, c->Cout * 4);
  BackendMem *by = be->ops->alloc(be, ny * 4);
  BackendMem *work = be->ops->alloc(be, be->ops->conv2d_work_floats(be, &g) * 4 + 64);
  backend_upload(be, bx, x, nx * 4), backend_upload(be, bw, w, nw * 4), backend_upload(be, bb, bias, c->Cout * 4);
  be->ops->conv2d_forward(be, by, bx, bw, c->bias ? bb : NULL, &g, work);
  backend_download(be, y, by, ny * 4);
  const double u = 0x1p-24, acc = (K + 2) * u, operands = 0x1p-7 + 0x1p-16;
  double worst16 = 0, worst32 = 0, worst_err = 0, mean_abs = 0;
  for (int b = 0; b < c->B; b++)
    for (int o = 0; o < c->Cout; o++)
      for (int oh = 0; oh < Ho; oh++)
        for (int ow = 0; ow < Wo; ow++) {
          double ref16 = 0, ref32 = 0, mag = 0;
          for (int ci = 0; ci < c->Cin; ci++)
            for (int ki = 0; ki < c->k; ki++)
              for (int kj = 0; kj < c->k; kj++) {
                const int ih = oh * c->stride - c->pad + ki, iw = ow * c->stride - c->pad + kj;
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                const float xv = x[(((size_t)b * c->Cin + ci) * c->H + ih) * c->W + iw];
                const float wv = w[((size_t)o * c->Cin + ci) * c->k * c->k + ki * c->k + kj];
                ref16 += rounded(wv) * rounded(xv);
                ref32 += (double)wv * xv;
                mag += fabs((double)wv * xv);
              }
          const double bv = c->bias ? bias[o] : 0;
          const double got = y[(((size_t)b * c->Cout + o) * Ho + oh) * Wo + ow];
          const double e16 = fabs(got - (ref16 + bv)) / (acc * mag + u * fabs(bv) + 1e-30);
          const double e32 = fabs(got - (ref32 + bv)) / ((operands + acc) * mag + u * fabs(bv) + 1e-30);
          worst16 = fmax(worst16, e16), worst32 = fmax(worst32, e32);
          worst_err = fmax(worst_err, fabs(got - (ref32 + bv)));
          mean_abs += fabs(got - (ref32 + bv)) / ny;
        }
  printf("bf16: conv B%d Cin%d %dx%d Cout%d k%d s%d p%d%s: max |y - fp32| %.2e (mean %.2e); largest error "
         "/ bound: %.3f against the rounded operands, %.3f against fp32\n", c->B, c->Cin, c->H, c->W, c->Cout, c->k,
         c->stride, c->pad, c->bias ? " +bias" : "", worst_err, mean_abs, worst16, worst32);
  const double worst = fmax(worst16, worst32);
  EXPECT(worst <= 1.0, "conv B%d Cin%d %dx%d Cout%d k%d: an error %.3f times its bound", c->B, c->Cin, c->H, c->W,
         c->Cout, c->k, worst);
  EXPECT(worst_err > 0, "no rounding at all: the bf16 path did not run");
  /* new weights through upload: the packed copy must follow them. Rounding is symmetric in sign, so
   * the convolution with -W (no bias) is exactly minus the one with W. */
  float *y2 = malloc(ny * sizeof(float));
  be->ops->conv2d_forward(be, by, bx, bw, NULL, &g, work);
  backend_download(be, y, by, ny * 4);
  for (size_t i = 0; i < nw; i++) w[i] = -w[i];
  backend_upload(be, bw, w, nw * 4);
  be->ops->conv2d_forward(be, by, bx, bw, NULL, &g, work);
  backend_download(be, y2, by, ny * 4);
  size_t stale = 0;
  for (size_t i = 0; i < ny; i++) stale += y2[i] != -y[i];
  EXPECT(stale == 0, "%zu of %zu outputs not those of the weights uploaded last", stale, ny);
  be->ops->free(be, bx), be->ops->free(be, bw), be->ops->free(be, bb), be->ops->free(be, by), be->ops->free(be, work);
  free(x), free(w), free(bias), free(y), free(y2);
  return worst;
}

int main(void) {
  check_rounding();
  char why[256];
  const Backend *be = backend_cpu_bf16(why, sizeof why);
  if (!be) {
    printf("bf16: convolution checks skipped: %s\n", why);
    return test_failures ? test_report("bf16") : 77;
  }
  const Case cases[] = {
      {2, 3, 32, 32, 64, 3, 1, 1, true},   /* the input convolution: K 27, rows at stride 1 */
      {3, 64, 8, 8, 40, 3, 1, 1, false},   /* rows of 8: gathers; Cout not a multiple of 32 */
      {2, 32, 16, 16, 32, 1, 1, 0, true},  /* 1x1 */
      {2, 16, 16, 16, 24, 3, 2, 1, true},  /* stride 2: gathers */
      {1, 5, 7, 7, 3, 3, 1, 1, true},      /* N 49, K 45, Cout 3 */
      {2, 128, 32, 32, 64, 3, 1, 1, true}, /* K 1152: long sums */
  };
  printf("bf16: kernel %s\n", conv2d_bf16_kernel(why, sizeof why) == BF16_AMX ? "AMX" : "AVX512-BF16");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_conv(&cases[i], be);
  return test_report("bf16");
}
