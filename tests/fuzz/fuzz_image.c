/* fuzz_image.c - libFuzzer harness for image decoding: image_decode (format whitelist by magic
 * bytes, header size limits) and behind it stb_image from Debian's libstb, linked as the project
 * links it; each input is tried with TGA refused and allowed (a file named .tga). A decoded image
 * must be within the limits, and every output byte is read here, in instrumented code, so a buffer
 * shorter than w * h * 3 is caught by ASan.
 * libstb itself is not instrumented: coverage feedback ends at its boundary, and memory errors
 * inside it show only as crashes or hangs.
 * Build: cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DDIFFUSE_FUZZ=ON && cmake --build build-fuzz --target fuzz_image
 * Run:   ./build-fuzz/tests/fuzz_image tests/fuzz/corpus_image -max_total_time=600
 * Seeds: tests/fuzz/make_corpus_image.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1); /* a private copy, so reads past the end are caught */
  memcpy(buf, data, size);
  for (int tga = 0; tga < 2; tga++) {
    uint8_t *rgb;
    int w, h;
    char err[256];
    if (image_decode(buf, size, tga, &rgb, &w, &h, err, sizeof err) != 0) continue;
    if (!rgb || w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (int64_t)w * h > IMAGE_MAX_PIXELS)
      abort();
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += rgb[i];
    volatile unsigned sink = sum;
    (void)sink;
    image_decode_free(rgb);
  }
  free(buf);
  return 0;
}
