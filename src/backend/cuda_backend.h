/* cuda_backend.h - the CUDA backend's entry points for the registry (backend.c). Compiled only with
 * -DDIFFUSE_CUDA=ON (DIFFUSE_HAVE_CUDA defined); private to src/backend/. */
#ifndef DIFFUSE_BACKEND_CUDA_BACKEND_H
#define DIFFUSE_BACKEND_CUDA_BACKEND_H

#include <stddef.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CUDA devices this process can use: 0 without a driver or a GPU (never an error). */
int backend_cuda_device_count(void);
/* The backend of device `device` (created on first use: stream, cuBLAS handle); NULL + a message. */
const Backend *backend_cuda_open(int device, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
