/* conv2d.h - 2-D convolution (cross-correlation, as PyTorch): 3x3 stride-1 pad-1 convolutions by
 * Winograd (winograd.h: F(4x4,3x3) on images of 16x16 and up, F(2x2,3x3) below, weight gradients by
 * the transposed algorithms), the others by im2col + GEMM with several images per GEMM.
 * Geometry (kernel, stride, per-side padding, output size): core/shapes.h.
 */
#ifndef DIFFUSE_OPS_CONV2D_H
#define DIFFUSE_OPS_CONV2D_H

#include <stddef.h>

#include "core/shapes.h" /* Conv2dGeom */

/* Floats of scratch memory conv2d_forward/backward need in `work`. */
size_t conv2d_work_floats(const Conv2dGeom *g);

void conv2d_forward(float *out,                                   // (B, Cout, Ho, Wo)
                    const float *in,                              // (B, Cin, H, W)
                    const float *w,                               // (Cout, Cin, kh, kw)
                    const float *bias,                            // (Cout) or NULL
                    const Conv2dGeom *g, float *work);

/* Accumulates (+=) into din, dw, dbias; any of them may be NULL to skip. */
void conv2d_backward(float *din,                                  // (B, Cin, H, W)
                     float *dw,                                   // (Cout, Cin, kh, kw)
                     float *dbias,                                // (Cout)
                     const float *dout,                           // (B, Cout, Ho, Wo)
                     const float *in,                             // (B, Cin, H, W)
                     const float *w,                              // (Cout, Cin, kh, kw)
                     const Conv2dGeom *g, float *work);

#endif
