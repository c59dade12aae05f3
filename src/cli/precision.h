/* precision.h - `--precision fp32|bf16` of `diffuse sample` and `diffuse eval fid --ckpt`: the backend
 * the diffusion model runs on (backend.h's backend_cpu_bf16 for bf16; the Inception network and a
 * guiding classifier stay fp32). */
#ifndef DIFFUSE_CLI_PRECISION_H
#define DIFFUSE_CLI_PRECISION_H

#include <stddef.h>

#include "backend/backend.h"

/* The model's backend for `precision` (NULL: fp32) on the --device backend. bf16 where this CPU
 * cannot run it prints why on stderr and falls back to fp32; without AMX it warns that the
 * AVX512-BF16 convolutions are slower than fp32's. NULL + a message for a value that is not
 * fp32 or bf16, or bf16 on a device other than the CPU. */
const Backend *precision_backend(const Backend *device, const char *precision, const char *command, char *err,
                                 size_t errlen);

#endif
