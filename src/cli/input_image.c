/* input_image.c - an image given on the command line as a model input; see input_image.h. */
#include "input_image.h"

#include <stdlib.h>

#include "core/error.h"
#include "io/file_read.h"
#include "io/image.h"

#define INPUT_IMAGE_MAX_BYTES ((size_t)256 << 20)

int input_image_load(const char *path, int C, int R, float *out, char *err, size_t errlen) {
  uint8_t *buf = NULL, *rgb = NULL;
  size_t size = 0;
  if (file_read_all(path, INPUT_IMAGE_MAX_BYTES, &buf, &size, err, errlen)) return -1;
  int w = 0, h = 0;
  char why[256];
  int rc = image_decode(buf, size, false, &rgb, &w, &h, why, sizeof why);
  free(buf);
  if (rc) return errorf(err, errlen, "%s: %s", path, why);
  if (w != R || h != R) {
    image_decode_free(rgb);
    return errorf(err, errlen, "%s is %dx%d, not the %dx%d needed: resize or crop it first", path, w, h, R, R);
  }
  uint8_t *planar = xmalloc((size_t)C * R * R);
  image_copy_planar(planar, C, rgb, 3, 1, (ptrdiff_t)w * 3, 3, h, w);
  for (size_t i = 0; i < (size_t)C * R * R; i++) out[i] = planar[i] / 127.5f - 1.0f;
  free(planar);
  image_decode_free(rgb);
  return 0;
}
