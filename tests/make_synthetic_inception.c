/* make_synthetic_inception.c - a test tool: write the synthetic FID Inception weights (tests/synthetic.h)
 * as the safetensors file `diffuse eval --inception` reads, for end-to-end evaluation tests that
 * cannot download pytorch-fid's weights. usage: make_synthetic_inception OUT.safetensors */
#include <stdio.h>

#include "synthetic.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_synthetic_inception OUT.safetensors\n");
    return 2;
  }
  Inception m;
  inception_init(&m, backend_cpu());
  synthetic_params(&m.params);
  synthetic_inception_write(&m, argv[1]);
  inception_free(&m);
  return 0;
}
