/* fuzz_npz.c - libFuzzer harness for the .npz (ZIP + .npy) reader.
 * Build: cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DDIFFUSE_FUZZ=ON && cmake --build build-fuzz
 * Run:   ./build-fuzz/tests/fuzz_npz tests/fuzz/corpus_npz -max_total_time=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1); /* a private copy, so reads past the end are caught */
  memcpy(buf, data, size);
  const char *names[2] = {"mu", "sigma"};
  char err[256];
  for (int i = 0; i < 2; i++) {
    NpzArray a;
    if (npz_read_buffer(buf, size, names[i], &a, err, sizeof err) == 0) npz_array_free(&a);
  }
  free(buf);
  return 0;
}
