/* linear.h - fully connected layer, y = x W^T + b (PyTorch nn.Linear layout). */
#ifndef DIFFUSE_OPS_LINEAR_H
#define DIFFUSE_OPS_LINEAR_H

void linear_forward(float *y,        // (N, out)
                    const float *x,  // (N, in)
                    const float *w,  // (out, in)
                    const float *b,  // (out) or NULL
                    int N, int in, int out);

/* Accumulates (+=); dx, dw, db may be NULL. */
void linear_backward(float *dx,        // (N, in)
                     float *dw,        // (out, in)
                     float *db,        // (out)
                     const float *dy,  // (N, out)
                     const float *x,   // (N, in)
                     const float *w,   // (out, in)
                     int N, int in, int out);

#endif
