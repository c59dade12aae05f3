/* fuzz_safetensors.c - libFuzzer harness for the safetensors parser and the float conversion.
 * Build: cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DDIFFUSE_FUZZ=ON && cmake --build build-fuzz
 * Run:   ./build-fuzz/tests/fuzz_safetensors tests/fuzz/corpus -max_total_time=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);
  SafeTensors st;
  char err[256];
  if (st_parse(&st, buf, size, err, sizeof err) != 0) return 0;
  for (int i = 0; i < st.n_tensors; i++) {
    const StTensor *t = &st.tensors[i];
    if (t->numel > (1u << 20)) continue;
    float *out = malloc(t->numel * sizeof(float) + 1);
    st_tensor_to_f32(t, out, err, sizeof err);
    free(out);
    (void)st_find(&st, t->name);
  }
  (void)st_meta_get(&st, "config");
  st_free(&st);
  return 0;
}
