/* backend.c - the registry of compiled backends: --device names, `info --devices`. */
#include "backend/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#ifdef DIFFUSE_HAVE_CUDA
#include "cuda_backend.h"
#endif

const Backend *backend_open(const char *device, char *err, size_t errlen) {
  if (!strcmp(device, "cpu")) return backend_cpu();
  if (!strncmp(device, "cuda", 4) && (device[4] == '\0' || device[4] == ':')) {
    long n = 0;
    if (device[4] == ':') {
      char *end;
      n = strtol(device + 5, &end, 10);
      if (device[5] < '0' || device[5] > '9' || *end || n < 0 || n > 255) {
        errorf(err, errlen, "device '%s': write cuda or cuda:N with N a device number", device);
        return NULL;
      }
    }
#ifdef DIFFUSE_HAVE_CUDA
    return backend_cuda_open((int)n, err, errlen);
#else
    errorf(err, errlen,
           "device '%s': this diffuse was built without the CUDA backend (rebuild with cmake -DDIFFUSE_CUDA=ON); "
           "use --device cpu",
           device);
    return NULL;
#endif
  }
  errorf(err, errlen, "device '%s' is not one of cpu, cuda, cuda:N (see diffuse info --devices)", device);
  return NULL;
}

int backend_list(const Backend **out, int max) {
  int n = 0;
  if (n < max) out[n++] = backend_cpu();
#ifdef DIFFUSE_HAVE_CUDA
  char err[256];
  for (int d = 0, count = backend_cuda_device_count(); d < count && n < max; d++) {
    const Backend *be = backend_cuda_open(d, err, sizeof err);
    if (be) out[n++] = be;
  }
#endif
  return n;
}

void backend_print_devices(void) {
  const Backend *list[16];
  const int n = backend_list(list, 16);
#ifdef DIFFUSE_HAVE_CUDA
  printf("compiled backends: cpu, cuda (%d CUDA device(s) here)\n", backend_cuda_device_count());
#else
  printf("compiled backends: cpu\n");
#endif
  for (int i = 0; i < n; i++) printf("  %-8s %s\n", list[i]->name, list[i]->ops->describe(list[i]));
#ifndef DIFFUSE_HAVE_CUDA
  printf("not compiled: cuda (cmake -DDIFFUSE_CUDA=ON)\n");
#endif
}

BackendMem *backend_alloc_or_exit(const Backend *be, size_t bytes, const char *what) {
  BackendMem *p = be->ops->alloc(be, bytes);
  if (!p) {
    char need[32];
    fprintf(stderr, "diffuse: out of %s memory: %s needs %s more\n", be->name, what,
            format_bytes(need, sizeof need, (double)bytes));
    exit(1);
  }
  return p;
}
