/* resample.h - nearest x2 upsampling (U-Net) and bilinear resizing (Inception input). */
#ifndef DIFFUSE_OPS_RESAMPLE_H
#define DIFFUSE_OPS_RESAMPLE_H

void upsample_nearest2x_forward(float *y /* (B, C, 2H, 2W) */, const float *x /* (B, C, H, W) */, int BC, int H,
                                int W);
void upsample_nearest2x_backward(float *dx, const float *dy, int BC, int H, int W); /* accumulates */

/* Bilinear, align_corners=False, no antialiasing: F.interpolate(mode='bilinear'). Forward only. */
void bilinear_resize_forward(float *y /* (B, C, Ho, Wo) */, const float *x /* (B, C, H, W) */, int BC, int H,
                             int W, int Ho, int Wo);

#endif
