/* image.c - decoding from memory with a format whitelist and size limits (stb_image), byte
 * mapping, channel conversion, area resize, padding and atomic PNG writing (stb_image_write; both
 * compiled into Debian's libstb); see image.h. */
#include "io/image.h"

#include <math.h>
#include <stb_image.h>
#include <stb_image_write.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/atomic_file.h"

/* ---- decoding ---- */

typedef enum { FORMAT_UNSUPPORTED, FORMAT_PNG, FORMAT_JPEG, FORMAT_BMP, FORMAT_TGA } ImageFormat;

static const char *const FORMAT_NAME[] = {"unsupported", "PNG", "JPEG", "BMP", "TGA"};

static bool starts_with(const uint8_t *buf, size_t n, const char *magic, size_t m) {
  return n >= m && memcmp(buf, magic, m) == 0;
}

/* A TGA header (18 bytes) that stb's TGA test can accept; see image.h. */
static bool plausible_tga(const uint8_t *b, size_t n) {
  if (n < 18 || b[1] > 1) return false;
  const bool type_ok = b[2] == 1 || b[2] == 2 || b[2] == 3 || b[2] == 9 || b[2] == 10 || b[2] == 11;
  const bool bpp_ok = b[16] == 8 || b[16] == 15 || b[16] == 16 || b[16] == 24 || b[16] == 32;
  return type_ok && bpp_ok;
}

/* The format by magic bytes (TGA: by a plausible header, where allowed). */
static ImageFormat sniff_format(const uint8_t *buf, size_t n, bool tga_allowed) {
  if (starts_with(buf, n, "\x89PNG\r\n\x1a\n", 8)) return FORMAT_PNG;
  if (starts_with(buf, n, "\xff\xd8\xff", 3)) return FORMAT_JPEG;
  if (starts_with(buf, n, "BM", 2)) return FORMAT_BMP;
  if (tga_allowed && plausible_tga(buf, n)) return FORMAT_TGA;
  return FORMAT_UNSUPPORTED;
}

/* buf[i], or 0 past the end (what stb reads there). */
static uint8_t byte_at(const uint8_t *buf, size_t n, size_t i) { return i < n ? buf[i] : 0; }

/* The Huffman tables of a JPEG DHT segment of length len whose first table starts at buf + p, read
 * as stb reads them (a table's 16 code counts, then that many symbols, even past the segment's
 * end): false if a table has more than 256 codes. */
static bool jpeg_dht_ok(const uint8_t *buf, size_t n, size_t p, long len) {
  for (long left = len - 2; left > 0;) {
    int codes = 0;
    for (int i = 0; i < 16; i++) codes += byte_at(buf, n, p + 1 + i);
    if (codes > 256) return false;
    p += 17 + (size_t)codes;
    left -= 17 + codes;
  }
  return true;
}

/* stb 2.27 builds a JPEG Huffman table without checking that its code counts sum to at most 256
 * (2.28 checks): a larger sum writes past the table's arrays in stb's decoder state (found by
 * fuzzing stb_image.h compiled with sanitizers). So every DHT segment stb can reach is checked
 * first: the marker segments after SOI are walked as stb walks them, segments skipped by their
 * length, fill bytes (FF FF), stuffed bytes (FF 00), restart markers and other bytes between
 * segments (entropy-coded data) passed over byte by byte, so each marker stb acts on is seen here
 * too. false if a table has more than 256 codes. */
static bool jpeg_tables_ok(const uint8_t *buf, size_t n) {
  size_t p = 2; /* after SOI */
  while (p + 1 < n) {
    const uint8_t m = buf[p + 1];
    if (buf[p] != 0xFF || m == 0xFF) {
      p++;
    } else if (m == 0x00 || (m >= 0xD0 && m <= 0xD7)) {
      p += 2;
    } else if (m == 0xD9) {
      return true; /* EOI: stb stops */
    } else {
      const size_t len = (size_t)byte_at(buf, n, p + 2) << 8 | byte_at(buf, n, p + 3);
      if (m == 0xC4 && !jpeg_dht_ok(buf, n, p + 4, (long)len)) return false;
      if (len < 2) return true; /* stb fails on this segment */
      p += 2 + len;
    }
  }
  return true;
}

int image_decode(const uint8_t *buf, size_t n, bool tga_allowed, uint8_t **rgb_out, int *w, int *h, char *err,
                 size_t errlen) {
  *rgb_out = NULL;
  *w = *h = 0;
  if (n > IMAGE_MAX_FILE_BYTES)
    return errorf(err, errlen, "file too large (%zu bytes; image files are limited to %d bytes)", n,
                  IMAGE_MAX_FILE_BYTES);
  const ImageFormat fmt = sniff_format(buf, n, tga_allowed);
  if (fmt == FORMAT_UNSUPPORTED) return errorf(err, errlen, "unsupported image format (only PNG, JPEG, BMP, TGA)");
  const char *name = FORMAT_NAME[fmt];
  if (fmt == FORMAT_JPEG && !jpeg_tables_ok(buf, n))
    return errorf(err, errlen, "corrupt JPEG (a Huffman table with more than 256 codes)");
  int iw = 0, ih = 0, comp = 0;
  if (!stbi_info_from_memory(buf, (int)n, &iw, &ih, &comp)) /* stb's reason is its last format's: useless */
    return errorf(err, errlen, "corrupt or truncated %s header", name);
  if (iw < 1 || ih < 1) return errorf(err, errlen, "corrupt %s header (image is %dx%d)", name, iw, ih);
  if (iw > IMAGE_MAX_SIDE || ih > IMAGE_MAX_SIDE || (int64_t)iw * ih > IMAGE_MAX_PIXELS)
    return errorf(err, errlen,
                  "image is %dx%d = %lld pixels, above the limit of %d pixels a side and %d pixels in total", iw, ih,
                  (long long)iw * ih, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
  int lw = 0, lh = 0;
  uint8_t *rgb = stbi_load_from_memory(buf, (int)n, &lw, &lh, &comp, 3);
  if (!rgb)
    return errorf(err, errlen, "corrupt %s data (%s)", name, stbi_failure_reason() ? stbi_failure_reason() : "?");
  if (lw != iw || lh != ih) {
    stbi_image_free(rgb);
    return errorf(err, errlen, "corrupt %s file (the header says %dx%d, the decoder returned %dx%d)", name, iw, ih,
                  lw, lh);
  }
  *rgb_out = rgb;
  *w = iw;
  *h = ih;
  return 0;
}

void image_decode_free(uint8_t *rgb) { stbi_image_free(rgb); }

/* ---- conversion and fitting ---- */

uint8_t image_to_u8(float v) {
  const float s = (v + 1.0f) * 127.5f;
  if (!(s > 0.0f)) return 0; /* also NaN */
  if (s >= 255.0f) return 255;
  return (uint8_t)roundf(s);
}

void image_copy_planar(uint8_t *out, int C, const uint8_t *src, int src_c, ptrdiff_t cs, ptrdiff_t ys, ptrdiff_t xs,
                       int h, int w) {
  CHECK((C == 1 || C == 3) && (src_c == 1 || src_c == 3) && h > 0 && w > 0);
  const size_t plane = (size_t)h * w;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const uint8_t *p = src + y * ys + x * xs;
      const size_t o = (size_t)y * w + x;
      if (src_c == C) {
        for (int c = 0; c < C; c++) out[c * plane + o] = p[c * cs];
      } else if (C == 1) { /* BT.601 luma, exact integer rounding: weights sum to 1000 */
        out[o] = (uint8_t)((299u * p[0] + 587u * p[cs] + 114u * p[2 * cs] + 500u) / 1000u);
      } else {
        out[o] = out[plane + o] = out[2 * plane + o] = p[0];
      }
    }
}

/* Box-filter taps along one axis: output o covers input [o * in / out, (o + 1) * in / out); input
 * pixel i gets the length of its overlap with that interval, normalized by the interval length. */
typedef struct {
  int *first, *count; /* (out) */
  float *w;           /* (out, max_taps) */
  int max_taps;
} AreaTaps;

static void area_taps_init(AreaTaps *t, int in, int out) {
  t->max_taps = in / out + 2;
  t->first = xmalloc((size_t)out * sizeof *t->first);
  t->count = xmalloc((size_t)out * sizeof *t->count);
  t->w = xcalloc((size_t)out * t->max_taps, sizeof *t->w);
  const double scale = (double)in / out;
  for (int o = 0; o < out; o++) {
    const double a = o * scale, b = o + 1 == out ? in : (o + 1) * scale;
    int i0 = (int)floor(a), i1 = (int)ceil(b); /* [i0, i1) */
    if (i1 > in) i1 = in;
    int n = 0;
    t->first[o] = i0;
    for (int i = i0; i < i1; i++) {
      const double cover = fmin(b, i + 1.0) - fmax(a, (double)i);
      CHECK(n < t->max_taps);
      t->w[(size_t)o * t->max_taps + n++] = (float)(cover > 0 ? cover / (b - a) : 0.0);
    }
    t->count[o] = n;
  }
}

static void area_taps_free(AreaTaps *t) {
  free(t->first);
  free(t->count);
  free(t->w);
}

void image_resize_area(uint8_t *out, const uint8_t *in, int C, int ih, int iw, int oh, int ow) {
  CHECK(C > 0 && ih > 0 && iw > 0 && oh > 0 && ow > 0);
  AreaTaps tx, ty;
  area_taps_init(&tx, iw, ow);
  area_taps_init(&ty, ih, oh);
  float *tmp = xmalloc((size_t)ih * ow * sizeof *tmp); /* one channel, resized along x */
  for (int c = 0; c < C; c++) {
    const uint8_t *src = in + (size_t)c * ih * iw;
    for (int y = 0; y < ih; y++)
      for (int x = 0; x < ow; x++) {
        const float *w = tx.w + (size_t)x * tx.max_taps;
        const uint8_t *row = src + (size_t)y * iw + tx.first[x];
        float s = 0.0f;
        for (int k = 0; k < tx.count[x]; k++) s += w[k] * row[k];
        tmp[(size_t)y * ow + x] = s;
      }
    uint8_t *dst = out + (size_t)c * oh * ow;
    for (int y = 0; y < oh; y++) {
      const float *w = ty.w + (size_t)y * ty.max_taps;
      for (int x = 0; x < ow; x++) {
        float s = 0.0f;
        for (int k = 0; k < ty.count[y]; k++) s += w[k] * tmp[(size_t)(ty.first[y] + k) * ow + x];
        dst[(size_t)y * ow + x] = s <= 0.0f ? 0 : s >= 255.0f ? 255 : (uint8_t)roundf(s);
      }
    }
  }
  free(tmp);
  area_taps_free(&tx);
  area_taps_free(&ty);
}

void image_pad(uint8_t *out, const uint8_t *in, int C, int ih, int iw, int oh, int ow) {
  CHECK(ih > 0 && iw > 0 && ih <= oh && iw <= ow);
  const int top = (oh - ih) / 2, left = (ow - iw) / 2;
  memset(out, 0, (size_t)C * oh * ow);
  for (int c = 0; c < C; c++)
    for (int y = 0; y < ih; y++)
      memcpy(out + ((size_t)c * oh + top + y) * ow + left, in + ((size_t)c * ih + y) * iw, (size_t)iw);
}

int image_fit_pads(int h, int w, int R) {
  return h <= R && w <= R && (h < R || w < R) && R - h <= IMAGE_PAD_MAX && R - w <= IMAGE_PAD_MAX;
}

void image_fit(uint8_t *out, const uint8_t *in, int C, int h, int w, int R) {
  if (h == R && w == R) memcpy(out, in, (size_t)C * R * R);
  else if (image_fit_pads(h, w, R)) image_pad(out, in, C, h, w, R, R);
  else image_resize_area(out, in, C, h, w, R, R);
}

/* ---- PNG writing ---- */

/* Write tile x (C, H, W), each pixel as a scale x scale block (nearest), into the interleaved 8-bit
 * canvas (rows of `stride` bytes) at (y0, x0). */
static void put_tile(uint8_t *canvas, size_t stride, int y0, int x0, const float *x, int C, int H, int W, int scale) {
  const size_t plane = (size_t)H * W;
  for (int y = 0; y < H * scale; y++) {
    uint8_t *row = canvas + (size_t)(y0 + y) * stride + (size_t)x0 * C;
    for (int xx = 0; xx < W * scale; xx++)
      for (int c = 0; c < C; c++)
        row[(size_t)xx * C + c] = image_to_u8(x[c * plane + (size_t)(y / scale) * W + xx / scale]);
  }
}

typedef struct {
  uint8_t *data;
  size_t size, cap;
} ByteBuf;

static void bytebuf_append(void *ctx, void *data, int size) {
  ByteBuf *b = ctx;
  if (b->size + (size_t)size > b->cap) {
    b->cap = (b->size + (size_t)size) * 2;
    b->data = xrealloc(b->data, b->cap);
  }
  memcpy(b->data + b->size, data, (size_t)size);
  b->size += (size_t)size;
}

/* Encode an interleaved canvas (H, W, C) as PNG and write it atomically. */
static int write_canvas(const char *path, const uint8_t *canvas, int C, int H, int W, char *err, size_t errlen) {
  ByteBuf png = {0};
  if (!stbi_write_png_to_func(bytebuf_append, &png, W, H, C, canvas, W * C)) {
    free(png.data);
    return errorf(err, errlen, "%s: PNG encoding failed (%dx%d, %d channels)", path, W, H, C);
  }
  const int rc = atomic_file_write(path, png.data, png.size, err, errlen);
  free(png.data);
  return rc;
}

static int check_shape(const char *path, int N, int C, int H, int W, char *err, size_t errlen) {
  if (C != 1 && C != 3) return errorf(err, errlen, "%s: cannot write %d-channel images as PNG (1 or 3)", path, C);
  if (N < 1 || H < 1 || W < 1) return errorf(err, errlen, "%s: empty image (%d images of %dx%d)", path, N, H, W);
  return 0;
}

int image_write_png(const char *path, const float *x, int C, int H, int W, char *err, size_t errlen) {
  if (check_shape(path, 1, C, H, W, err, errlen)) return -1;
  if ((double)H * W * C > 1e9) return errorf(err, errlen, "%s: image too large (%dx%d)", path, W, H);
  uint8_t *canvas = xmalloc((size_t)H * W * C);
  put_tile(canvas, (size_t)W * C, 0, 0, x, C, H, W, 1);
  const int rc = write_canvas(path, canvas, C, H, W, err, errlen);
  free(canvas);
  return rc;
}

int image_write_grid_png(const char *path, const float *x, int N, int C, int H, int W, char *err, size_t errlen) {
  enum { PAD = 2 };
  if (check_shape(path, N, C, H, W, err, errlen)) return -1;
  int cols = (int)ceil(sqrt((double)N));
  while (cols > 1 && (cols - 1) * (cols - 1) >= N) cols--; /* guard sqrt rounding */
  while ((double)cols * cols < N) cols++;
  const int rows = (N + cols - 1) / cols;
  const int longer = H > W ? H : W, scale = longer < IMAGE_GRID_MIN_CELL ? (IMAGE_GRID_MIN_CELL + longer - 1) / longer : 1;
  const int th = H * scale, tw = W * scale;
  const double gw = (double)cols * (tw + PAD) + PAD, gh = (double)rows * (th + PAD) + PAD;
  if (gw * gh * C > 1e9 || gw * C > 1e9) return errorf(err, errlen, "%s: grid too large (%.0fx%.0f)", path, gw, gh);
  const int GW = (int)gw, GH = (int)gh;
  uint8_t *canvas = xcalloc((size_t)GH * GW * C, 1); /* padding is black */
  for (int i = 0; i < N; i++)
    put_tile(canvas, (size_t)GW * C, PAD + (i / cols) * (th + PAD), PAD + (i % cols) * (tw + PAD),
             x + (size_t)i * C * H * W, C, H, W, scale);
  const int rc = write_canvas(path, canvas, C, GH, GW, err, errlen);
  free(canvas);
  return rc;
}
