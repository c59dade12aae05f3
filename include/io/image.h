/* image.h - 8-bit image helpers shared by the dataset loader and the sample writers: decoding
 * (stb_image), channel conversion, fitting to a square, PNG writing.
 *
 * Decoding (image_decode) takes the file's bytes, not its name: Debian's libstb (stb_image 2.27)
 * picks a decoder by content, and its PNM, HDR, PSD, GIF and PIC decoders have known crashes and
 * hangs (a 16-bit PGM segfaults, a truncated RLE HDR loops forever), whatever the file is called.
 * So only PNG (89 50 4E 47 0D 0A 1A 0A), JPEG (FF D8 FF) and BMP ("BM") are recognised by their
 * magic bytes, and TGA, which has none, only where the caller allows it (a file named .tga) and the
 * header is plausible: colour-map type 0 or 1, image type 1, 2, 3, 9, 10 or 11, and 8, 15, 16, 24
 * or 32 bits per pixel. With colour-map type 0 or 1 in byte 1 no other stb format's test matches,
 * so stb takes its TGA path. Everything else is refused before stb sees it. A JPEG whose Huffman
 * table (DHT) declares more than 256 codes is refused too: stb 2.27 does not check that and writes
 * past its tables (found by fuzzing; 2.28 checks). The header's size is
 * read first (stbi_info_from_memory) and images above IMAGE_MAX_SIDE or IMAGE_MAX_PIXELS are
 * refused before decoding (a 945 KB PNG can claim 18000 x 18000, 1.9 GB of pixels).
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
 * PNG files are written atomically (io/atomic_file.h: a temporary beside PATH, fsynced, renamed).
 */
#ifndef DIFFUSE_IO_IMAGE_H
#define DIFFUSE_IO_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_PAD_MAX 4

/* Decoding limits: at most IMAGE_MAX_SIDE pixels a side and IMAGE_MAX_PIXELS (64 Mi) pixels in
 * all, i.e. at most 192 MiB of decoded RGB (stb may hold 4 bytes a pixel, or 8 for 16-bit PNG, while
 * converting). Larger than any training source, and one image per decoding thread must fit. */
#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS (64 * 1024 * 1024)
/* Image files are decoded from memory and stb takes an int length: at most INT_MAX bytes. */
#define IMAGE_MAX_FILE_BYTES 0x7fffffff

/* Decode an image file's bytes (buf, n) to interleaved 8-bit RGB (h, w, 3) by the rules above;
 * tga_allowed: also accept a plausible TGA header (pass true for files named .tga). On success
 * *rgb_out (release with image_decode_free), *w and *h are set and 0 is returned; otherwise -1 with
 * what is wrong in err (no file name: the caller adds it), *rgb_out NULL and *w = *h = 0. */
int image_decode(const uint8_t *buf, size_t n, bool tga_allowed, uint8_t **rgb_out, int *w, int *h, char *err,
                 size_t errlen);
void image_decode_free(uint8_t *rgb);

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
 * between and around the tiles. Images smaller than IMAGE_GRID_MIN_CELL are enlarged (nearest) by
 * the integer s = ceil(IMAGE_GRID_MIN_CELL / max(H, W)), so the PNG is
 * (cols * (s W + 2) + 2) x (rows * (s H + 2) + 2) and a 28x28 sample is seen as 84x84. */
#define IMAGE_GRID_MIN_CELL 64
int image_write_grid_png(const char *path, const float *x /* (N, C, H, W) in [-1, 1] */, int N, int C, int H, int W,
                         char *err, size_t errlen);

#endif
