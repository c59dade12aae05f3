/* backend.c - the registry of compiled backends: --device names, `info --devices`. */
#include "backend/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

const Backend *backend_open(const char *device, char *err, size_t errlen) {
  if (!strcmp(device, "cpu")) return backend_cpu();
  if (!strncmp(device, "cuda", 4) && (device[4] == '\0' || device[4] == ':')) {
    if (device[4] == ':') {
      char *end;
      const long n = strtol(device + 5, &end, 10);
      if (device[5] < '0' || device[5] > '9' || *end || n < 0 || n > 255) {
        errorf(err, errlen, "device '%s': write cuda or cuda:N with N a device number", device);
        return NULL;
      }
    }
    errorf(err, errlen,
           "device '%s': this diffuse was built without the CUDA backend (build option DIFFUSE_CUDA, which the "
           "source does not provide yet); use --device cpu",
           device);
    return NULL;
  }
  errorf(err, errlen, "device '%s' is not one of cpu, cuda, cuda:N (see diffuse info --devices)", device);
  return NULL;
}

int backend_list(const Backend **out, int max) {
  int n = 0;
  if (n < max) out[n++] = backend_cpu();
  return n;
}

void backend_print_devices(void) {
  const Backend *cpu = backend_cpu();
  printf("compiled backends: cpu\n");
  printf("  %-8s %s\n", cpu->name, cpu->ops->describe(cpu));
  printf("not compiled: cuda (build option DIFFUSE_CUDA; the CUDA backend is not in the source yet)\n");
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
