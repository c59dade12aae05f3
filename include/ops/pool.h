/* pool.h - average, max and global-average pooling (square kernels, PyTorch floor mode).
 * Geometry and output size: core/shapes.h. Backward kernels accumulate (+=). */
#ifndef DIFFUSE_OPS_POOL_H
#define DIFFUSE_OPS_POOL_H

#include <stdbool.h>

#include "core/shapes.h" /* Pool2dGeom */

/* count_include_pad: divide by k*k (true) or by the number of in-bounds pixels (false). */
void avg_pool2d_forward(float *y, const float *x, const Pool2dGeom *g, bool count_include_pad);
void avg_pool2d_backward(float *dx, const float *dy, const Pool2dGeom *g, bool count_include_pad);

/* argmax (B, C, Ho, Wo) receives the flat H*W index of each window's maximum for the backward;
 * NULL when there is no backward (inference). */
void max_pool2d_forward(float *y, int *argmax, const float *x, const Pool2dGeom *g);
void max_pool2d_backward(float *dx, const float *dy, const int *argmax, const Pool2dGeom *g);

void global_avg_pool_forward(float *y /* (B, C) */, const float *x /* (B, C, H, W) */, int B, int C, int HW);
void global_avg_pool_backward(float *dx, const float *dy, int B, int C, int HW);

#endif
