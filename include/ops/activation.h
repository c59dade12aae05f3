/* activation.h - pointwise nonlinearities and row softmax. Backward kernels accumulate (+=). */
#ifndef DIFFUSE_OPS_ACTIVATION_H
#define DIFFUSE_OPS_ACTIVATION_H

#include <stddef.h>

void silu_forward(float *y, const float *x, size_t n);                       // y = x * sigmoid(x)
void silu_backward(float *dx, const float *dy, const float *x, size_t n);
void silu_backward_overwrite(float *dx, const float *dy, const float *x, size_t n); // dx = (not +=)
void relu_forward(float *y, const float *x, size_t n);

/* Softmax over the last dim of a (rows, cols) matrix; backward uses the saved output y. */
void softmax_forward(float *y, const float *x, int rows, int cols);
void softmax_backward(float *dx, const float *dy, const float *y, int rows, int cols);

#endif
