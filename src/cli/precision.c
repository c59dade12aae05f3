/* precision.c - `--precision`; see precision.h. */
#include "precision.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

const Backend *precision_backend(const Backend *device, const char *precision, const char *command, char *err,
                                 size_t errlen) {
  if (!precision || !strcmp(precision, "fp32")) return device;
  if (strcmp(precision, "bf16")) {
    errorf(err, errlen, "--precision: '%s' is not fp32 or bf16", precision);
    return NULL;
  }
  if (device != backend_cpu()) {
    errorf(err, errlen, "--precision bf16 runs on the CPU; on --device %s use fp32", device->name);
    return NULL;
  }
  char why[256];
  const Backend *bf16 = backend_cpu_bf16(why, sizeof why);
  if (bf16 && !strcmp(backend_cpu_bf16_kernel(why, sizeof why), "AVX512-BF16"))
    fprintf(stderr, "diffuse %s: --precision bf16 without AMX runs direct AVX512-BF16 convolutions, not Winograd: "
                    "expect it slower than fp32 (README, bf16 inference)\n", command);
  if (bf16) return bf16;
  fprintf(stderr, "diffuse %s: --precision bf16: %s; running in fp32\n", command, why);
  return device;
}
