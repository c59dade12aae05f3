/* image.h - 8-bit image helpers shared by the dataset loader and the sample writers.
 *
 * Conventions: images are planar (C, H, W) like tensors; float images are in [-1, 1] and map to
 * bytes by round((x + 1) * 127.5) clamped to [0, 255] (NaN -> 0); bytes map back by p / 127.5 - 1.
 * Channel conversion: RGB -> gray is ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (rounded),
 * gray -> RGB replicates the plane.
 *
 * Fitting an h x w image to R x R (image_fit), after any center crop:
 *   - h == w == R: copied;
 *   - h <= R, w <= R and each side at most IMAGE_PAD_MAX pixels short of R: zero-padded
 *     symmetrically with black (byte 0, i.e. -1), an odd extra pixel going to the bottom/right
 *     (MNIST / Fashion-MNIST 28x28 -> 32x32 keeps the strokes pixel-exact);
 *   - otherwise: resized with an area (box) filter, each output pixel the average of the input
 *     area it covers with fractional coverage weights (downscaling and upscaling alike).
 *     A non-square image is stretched: use a center crop to keep the aspect ratio.
 *
 * PNG files are written atomically (PATH.tmp.<pid>, flushed, fsynced, renamed over PATH).
 */
#ifndef DIFFUSE_IO_IMAGE_H
#define DIFFUSE_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_PAD_MAX 4

/* round((v + 1) * 127.5) clamped to [0, 255]; NaN -> 0. */
uint8_t image_to_u8(float v);

/* Copy a strided 8-bit image into planar (C, h, w), converting src_c channels (1 or 3) to C (1 or 3).
 * Source pixel (c, y, x) is src[c * cs + y * ys + x * xs], so interleaved (HWC: cs = 1, ys = w * src_c,
 * xs = src_c) and planar (CHW: cs = h * w, ys = w, xs = 1) sources, and windows of them, all work. */
void image_copy_planar(uint8_t *out /* (C, h, w) */, int C, const uint8_t *src, int src_c, ptrdiff_t cs,
                       ptrdiff_t ys, ptrdiff_t xs, int h, int w);

/* Area (box) resize of a planar image; see the rule above. */
void image_resize_area(uint8_t *out /* (C, oh, ow) */, const uint8_t *in /* (C, ih, iw) */, int C, int ih, int iw,
                       int oh, int ow);

/* Symmetric zero padding (requires ih <= oh, iw <= ow). */
void image_pad(uint8_t *out /* (C, oh, ow) */, const uint8_t *in /* (C, ih, iw) */, int C, int ih, int iw, int oh,
               int ow);

/* 1 if image_fit pads an h x w image to R x R, 0 if it copies or resizes. */
int image_fit_pads(int h, int w, int R);
/* Bring an h x w image to R x R by the rule above. */
void image_fit(uint8_t *out /* (C, R, R) */, const uint8_t *in /* (C, h, w) */, int C, int h, int w, int R);

/* One image (C = 1: grayscale PNG, C = 3: RGB). 0 or -1 + err naming the file. */
int image_write_png(const char *path, const float *x /* (C, H, W) in [-1, 1] */, int C, int H, int W, char *err,
                    size_t errlen);
/* N images on a near-square grid: cols = ceil(sqrt(N)), rows = ceil(N / cols), 2 black pixels
 * between and around the tiles, so the PNG is (cols * (W + 2) + 2) x (rows * (H + 2) + 2). */
int image_write_grid_png(const char *path, const float *x /* (N, C, H, W) in [-1, 1] */, int N, int C, int H, int W,
                         char *err, size_t errlen);

#endif
