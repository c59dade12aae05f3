/* winograd.h - 3x3, stride-1, pad-1 convolutions by Winograd's minimal filtering F(m x m, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).
 *
 * Each m x m output tile is A^T [ (G g G^T) . (B^T d B) ] A for the (m+2) x (m+2) input patch d
 * around it: the elementwise products over the (m+2)^2 transformed positions become (m+2)^2 GEMMs of
 * (Cout, Cin) x (Cin, tiles). F(4x4, 3x3) (m = 4: 4x fewer multiplications than the direct
 * convolution) serves images of 16x16 and up, F(2x2, 3x3) (2.25x) smaller ones. Used by conv2d for
 * the forward pass, the input gradient (itself a 3x3 pad-1 convolution) and, seen from the other
 * side as F(3x3, m x m), the weight gradient.
 * Measured (2 threads, alternating A/B runs on the same machine state): F(2x2) against im2col + GEMM,
 * CIFAR-10 U-Net batch 8 training step 1304-1394 -> 1127-1200 ms; then F(4x4) with faster transforms,
 * 1144-1286 -> 982-1077 ms (sampling forward even at first, faster once the transforms were
 * rewritten). Rounding differs from the direct sum by a few ulps per layer (more for F(4x4), whose
 * transforms have larger coefficients); the op, U-Net and Inception reference tests pass at their
 * tolerances, unchanged.
 */
#ifndef DIFFUSE_OPS_WINOGRAD_H
#define DIFFUSE_OPS_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/conv2d.h"

bool winograd_applies(const Conv2dGeom *g);
/* U ((m+2)^2, Cout, Cin) = G w G^T for each (output, input) channel pair of w (Cout, Cin, 3, 3). */
size_t winograd_kernel_floats(const Conv2dGeom *g);
void winograd_transform_kernel(float *U, const float *w, const Conv2dGeom *g);
/* The same for the input gradient's kernel W' (Cin, Cout, 3, 3), W'[c][o] = W[o][c] turned by 180
 * degrees, straight from w: U (planes, Cin, Cout) for the transposed geometry. */
void winograd_transform_kernel_flipped(float *U, const float *w, const Conv2dGeom *g);
/* Images per call of winograd_images and of winograd_weight_grad_images (about 1024 outputs), and the
 * work floats either call needs. */
int winograd_images_per_chunk(const Conv2dGeom *g);
int winograd_weight_grad_images_per_chunk(const Conv2dGeom *g);
size_t winograd_chunk_floats(const Conv2dGeom *g);
/* Weight gradient by F(3x3, m x m), the same tiles seen from the other side: per tile, the m x m
 * block of dY meets the (m+2) x (m+2) input patch, (m+2)^2 GEMMs (Cout, tiles) x (tiles, Cin) sum over
 * the tiles into acc ((m+2)^2, Cout, Cin), and a 3x3 output transform gives dW. For m = 4 (the
 * transposition of F(4x4, 3x3)): patch by B^T, dY block by A, output by G^T. For m = 2: dY block by
 * G' = [1 0; 1/2 1/2; 1/2 -1/2; 0 1], patch by F(2x2, 3x3)'s B^T with the last row negated, output
 * by A'^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1].
 * winograd_weight_grad_images adds g->B images (at most winograd_weight_grad_images_per_chunk) to
 * acc (first: sets acc instead, so it needs no zeroing); winograd_weight_grad_finish adds the result to
 * dw (Cout, Cin, 3, 3). */
size_t winograd_weight_grad_floats(const Conv2dGeom *g);
void winograd_weight_grad_images(float *acc, const float *dout, const float *in, const Conv2dGeom *g, bool first,
                                 float *work);
void winograd_weight_grad_finish(float *dw, const float *acc, const Conv2dGeom *g);

/* out (B, Cout, H, W) = conv(in) + bias (bias may be NULL), or += with accumulate, for g->B images
 * (at most winograd_images_per_chunk). */
void winograd_images(float *out, const float *in, const float *U, const float *bias, const Conv2dGeom *g,
                     bool accumulate, float *work);

#endif
