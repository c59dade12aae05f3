/* conv2d_bf16.h - the bf16 inference convolution: bf16 products with fp32 accumulation on Intel AMX
 * tiles (Sapphire Rapids and later) or with AVX512-BF16 (AMD Zen 4, Intel Cooper Lake), for
 * `--precision bf16`.
 *
 * The weights (Cout, K = Cin*kh*kw) are rounded to bf16 (round to nearest even) and packed once into
 * AMX A tiles; each forward rounds the im2col columns of the input the same way, packs them into B
 * tiles (pairs of rows interleaved, the VNNI layout) and accumulates Y = W col with TDPBF16PS
 * (or VDPBF16PS) in fp32.
 * Only the two operands are rounded: the sums, the bias and everything around the convolution stay
 * fp32. Any stride and padding run, kernels of up to 64 positions, inputs below 2^31 floats
 * (conv2d_bf16_supports); no Winograd (its transforms would amplify the operands' rounding).
 */
#ifndef DIFFUSE_OPS_CONV2D_BF16_H
#define DIFFUSE_OPS_CONV2D_BF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/shapes.h" /* Conv2dGeom */

typedef enum { BF16_NONE, BF16_AVX512, BF16_AMX } Bf16Kernel;

/* The kernel this CPU and OS run, by cpuid, decided once: AMX (AMX-TILE, AMX-BF16 and the kernel's
 * permission for the tile state, arch_prctl ARCH_REQ_XCOMP_PERM), else AVX512-BF16 (VDPBF16PS), else
 * BF16_NONE and why. DIFFUSE_BF16_KERNEL=avx512bf16 forces AVX512-BF16 where AMX exists. */
Bf16Kernel conv2d_bf16_kernel(char *why, size_t whylen);

/* Whether the bf16 convolution takes this geometry (the backend runs fp32 where it does not). */
bool conv2d_bf16_supports(const Conv2dGeom *g);

/* fp32 -> bf16, round to nearest even (NaN stays NaN). */
uint16_t bf16_from_float(float x);
float bf16_to_float(uint16_t h);

/* Bytes of the packed weights of a convolution (64-byte multiple). */
size_t conv2d_bf16_packed_bytes(const Conv2dGeom *g);
/* packed (64-byte aligned, conv2d_bf16_packed_bytes) <- w (Cout, Cin, kh, kw) in bf16, zero-padded. */
void conv2d_bf16_pack_weights(uint16_t *packed, const float *w, const Conv2dGeom *g);

/* out (B, Cout, Ho, Wo) = conv(in (B, Cin, H, W), packed weights) + bias (may be NULL). Threads over
 * the OpenMP threads; its scratch is per thread, grown to the largest convolution and then reused. */
void conv2d_bf16_forward(float *out, const float *in, const uint16_t *packed, const float *bias, const Conv2dGeom *g);

#endif
