/* make_corpus_image.c - writes the seed and regression inputs of tests/fuzz/corpus_image: tiny valid
 * PNG / JPEG / BMP / TGA files (stb_image_write, several channel counts) and hand-built hostile
 * headers: the stb 2.27 crash and hang cases (16-bit PGM, truncated RLE Radiance HDR), decompression
 * bombs (PNG IHDRs above image.h's size limits, with correct CRCs although stb does not check them),
 * JPEG Huffman tables with more than 256 codes (stb 2.27 writes past its tables; found by fuzzing),
 * formats that must be refused (GIF, PSD, PIC), and a TGA with an implausible header.
 * Not part of the build; regenerate with
 *   cc tests/fuzz/make_corpus_image.c $(pkg-config --cflags --libs stb) -o /tmp/make_corpus_image &&
 *   /tmp/make_corpus_image tests/fuzz/corpus_image */
#include <stb_image_write.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static void write_file(const char *name, const void *data, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", out_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* What the last stbi_write_*_to_func call wrote (it writes a file in many pieces). */
static struct {
  uint8_t *data;
  size_t n;
} pending;

static void append(void *ctx, void *data, int size) {
  (void)ctx;
  pending.data = realloc(pending.data, pending.n + (size_t)size);
  if (!pending.data) abort();
  memcpy(pending.data + pending.n, data, (size_t)size);
  pending.n += (size_t)size;
}

/* Write the pending bytes of a successful stbi_write_*_to_func call (ok) into name. */
static void save(const char *name, int ok) {
  if (!ok) fprintf(stderr, "stb_image_write failed for %s\n", name), exit(1);
  write_file(name, pending.data, pending.n);
  free(pending.data);
  pending.data = NULL, pending.n = 0;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

/* Exported by Debian's libstb (stb_image_write.h declares it only inside the implementation). */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

/* Append a PNG chunk (length, type, data, CRC of type + data) at b + *n. */
static void png_chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *data, size_t len) {
  put_be32(b + *n, (uint32_t)len);
  memcpy(b + *n + 4, type, 4);
  if (len) memcpy(b + *n + 8, data, len);
  put_be32(b + *n + 8 + len, crc32_of(b + *n + 4, 4 + len));
  *n += 12 + len;
}

/* A PNG of the given header fields; plte (or NULL) is the palette, raw the filtered scanlines
 * (compressed here into one IDAT), or NULL for a file that is only a header. */
static void png_file(const char *name, uint32_t w, uint32_t h, uint8_t depth, uint8_t ct, uint8_t interlace,
                     const uint8_t *plte, size_t plte_n, const uint8_t *raw, size_t raw_n) {
  uint8_t b[1024], ihdr[13] = {0};
  size_t n = 8;
  memcpy(b, "\x89PNG\r\n\x1a\n", 8);
  put_be32(ihdr, w), put_be32(ihdr + 4, h);
  ihdr[8] = depth, ihdr[9] = ct, ihdr[12] = interlace;
  png_chunk(b, &n, "IHDR", ihdr, sizeof ihdr);
  if (plte) png_chunk(b, &n, "PLTE", plte, plte_n);
  if (raw) {
    int zn = 0;
    uint8_t *z = stbi_zlib_compress((uint8_t *)raw, (int)raw_n, &zn, 8);
    if (!z || (size_t)zn > sizeof b - n - 24) abort();
    png_chunk(b, &n, "IDAT", z, (size_t)zn);
    free(z);
  }
  png_chunk(b, &n, "IEND", NULL, 0);
  write_file(name, b, n);
}

/* SOI, one DHT segment (table class/id tc_th, these 16 code counts, symbols 0, 1, 2, ...), EOI. */
static void jpeg_dht(const char *name, uint8_t tc_th, const uint8_t counts[16]) {
  static uint8_t b[8 + 17 + 16 * 255];
  size_t codes = 0, n = 0;
  for (int i = 0; i < 16; i++) codes += counts[i];
  const size_t len = 2 + 17 + codes;
  b[n++] = 0xFF, b[n++] = 0xD8, b[n++] = 0xFF, b[n++] = 0xC4, b[n++] = (uint8_t)(len >> 8), b[n++] = (uint8_t)len;
  b[n++] = tc_th;
  memcpy(b + n, counts, 16), n += 16;
  for (size_t i = 0; i < codes; i++) b[n++] = (uint8_t)i;
  b[n++] = 0xFF, b[n++] = 0xD9;
  write_file(name, b, n);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  enum { W = 5, H = 3 };
  uint8_t px[W * H * 4];
  for (int i = 0; i < W * H * 4; i++) px[i] = (uint8_t)(i * 37 + 11);

  /* valid seeds */
  save("png_gray.png", stbi_write_png_to_func(append, NULL, W, H, 1, px, W));
  save("png_gray_alpha.png", stbi_write_png_to_func(append, NULL, W, H, 2, px, W * 2));
  save("png_rgb.png", stbi_write_png_to_func(append, NULL, W, H, 3, px, W * 3));
  save("png_rgba.png", stbi_write_png_to_func(append, NULL, W, H, 4, px, W * 4));
  save("jpeg_gray.jpg", stbi_write_jpg_to_func(append, NULL, W, H, 1, px, 90));
  save("jpeg_rgb.jpg", stbi_write_jpg_to_func(append, NULL, W, H, 3, px, 75));
  save("bmp_rgb.bmp", stbi_write_bmp_to_func(append, NULL, W, H, 3, px));
  save("bmp_rgba.bmp", stbi_write_bmp_to_func(append, NULL, W, H, 4, px));
  save("tga_rle_rgb.tga", stbi_write_tga_to_func(append, NULL, W, H, 3, px));
  save("tga_rle_gray.tga", stbi_write_tga_to_func(append, NULL, W, H, 1, px));
  stbi_write_tga_with_rle = 0;
  save("tga_raw_rgba.tga", stbi_write_tga_to_func(append, NULL, W, H, 4, px));
  /* PNG variants stb_image_write does not produce: 16-bit, palette, 1-bit, interlaced (Adam7: a 1x1
   * image is all in the first pass). Scanlines are filter byte 0 (none) + pixels. */
  static const uint8_t gray16[] = {0, 0x12, 0x34, 0xff, 0xff, 0x00, 0x01};  /* 3x1 */
  png_file("png_gray16.png", 3, 1, 16, 0, 0, NULL, 0, gray16, sizeof gray16);
  static const uint8_t rgb16[] = {0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc};   /* 1x1 */
  png_file("png_rgb16.png", 1, 1, 16, 2, 0, NULL, 0, rgb16, sizeof rgb16);
  static const uint8_t plte[] = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  static const uint8_t idx8[] = {0, 0, 1, 2, 1, 0, 2, 1, 0, 0};             /* 4x2 */
  png_file("png_palette.png", 4, 2, 8, 3, 0, plte, sizeof plte, idx8, sizeof idx8);
  static const uint8_t bits1[] = {0, 0xA5, 0, 0x5A};
  png_file("png_gray1.png", 8, 2, 1, 0, 0, NULL, 0, bits1, sizeof bits1);
  static const uint8_t one_rgb[] = {0, 10, 20, 30};
  png_file("png_interlaced_1x1.png", 1, 1, 8, 2, 1, NULL, 0, one_rgb, sizeof one_rgb);

  /* stb 2.27 bugs that the format whitelist keeps away from stb */
  static const char pgm16[] = "P5\n4096 4096\n65535\n\1\2\3\4"; /* SIGSEGV in the 16 -> 8 bit conversion */
  write_file("regress_pgm16.png", pgm16, sizeof pgm16 - 1);
  static const char hdr[] = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n\2\2\0\x08"; /* endless loop */
  write_file("regress_hdr_truncated_rle.png", hdr, sizeof hdr - 1);

  /* JPEG Huffman tables with more than 256 codes, which stb 2.27 writes past its arrays (a
   * valid-looking code-length set: 2 codes of 15 bits and 255 of 16, or 255 of each length 9..16) */
  jpeg_dht("regress_jpeg_dht_257_codes.jpg", 0x10, (const uint8_t[16]){[14] = 2, [15] = 255});
  jpeg_dht("regress_jpeg_dht_2040_codes.jpg", 0x13,
           (const uint8_t[16]){[8] = 255, 255, 255, 255, 255, 255, 255, 255});

  /* decompression bombs: refused from the header */
  png_file("regress_bomb_18000x18000.png", 18000, 18000, 8, 2, 0, NULL, 0, NULL, 0);
  png_file("regress_bomb_16384x4097.png", 16384, 4097, 8, 0, 0, NULL, 0, NULL, 0);
  png_file("regress_bomb_1x16385.png", 1, 16385, 8, 6, 0, NULL, 0, NULL, 0);

  /* other formats stb knows, refused by magic */
  static const char gif[] = "GIF89a\1\0\1\0\0\0\0,\0\0\0\0\1\0\1\0\0\2\2D\1\0;";
  write_file("refused_gif.gif", gif, sizeof gif - 1);
  static const char psd[] = "8BPS\0\1\0\0\0\0\0\0\0\3\0\0\0\1\0\0\0\1\0\x08\0\3";
  write_file("refused_psd.psd", psd, sizeof psd - 1);
  static const char pic[] = "\x53\x80\xF6\x34";
  write_file("refused_pic.pic", pic, sizeof pic - 1);

  /* a TGA header with an image type no decoder knows */
  static const uint8_t tga_bad[18] = {0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 24, 0};
  write_file("refused_tga_type4.tga", tga_bad, sizeof tga_bad);
  return 0;
}
