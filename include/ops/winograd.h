/* winograd.h - 3x3, stride-1, pad-1 convolutions by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).
 *
 * Each 2x2 output tile is A^T [ (G g G^T) . (B^T d B) ] A for the 4x4 input patch d around it: the
 * elementwise products over the 16 transformed positions become 16 GEMMs of (Cout, Cin) x (Cin, tiles),
 * 2.25x fewer multiplications than the direct convolution. Used by conv2d for the forward pass and
 * for the input gradient (itself a 3x3 pad-1 convolution); the weight gradient stays im2col + GEMM.
 * Measured against im2col + GEMM (2 threads, alternating runs): CIFAR-10 U-Net batch 8 sampling
 * forward 412-448 -> 329-363 ms, training step 1304-1394 -> 1183-1355 ms; quickstart batch 16
 * 61-71 -> 48-55 ms and 159-210 -> 149-180 ms. Its rounding differs from the direct sum by a few
 * ulps per layer; the op, U-Net and Inception reference tests pass at their tolerances.
 */
#ifndef DIFFUSE_OPS_WINOGRAD_H
#define DIFFUSE_OPS_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/conv2d.h"

bool winograd_applies(const Conv2dGeom *g);
/* U (16, Cout, Cin) = G w G^T for each (output, input) channel pair of w (Cout, Cin, 3, 3). */
size_t winograd_kernel_floats(const Conv2dGeom *g);
void winograd_transform_kernel(float *U, const float *w, const Conv2dGeom *g);
/* Images per call of winograd_images (about 512 tiles), and the work floats such a call needs. */
int winograd_images_per_chunk(const Conv2dGeom *g);
size_t winograd_chunk_floats(const Conv2dGeom *g);
/* out (B, Cout, H, W) = conv(in) + bias (bias may be NULL), or += with accumulate, for g->B images
 * (at most winograd_images_per_chunk). */
void winograd_images(float *out, const float *in, const float *U, const float *bias, const Conv2dGeom *g,
                     bool accumulate, float *work);

#endif
