/* compare_checkpoints.c - a test tool: are two safetensors files the same tensors within a tolerance?
 *
 * usage: compare_checkpoints A B TOL [SKIP ...]
 * Every float32 tensor of A must be in B with the same shape; element-wise |a - b| <= TOL (|b| + max|b|)
 * (test_util.h's measure: relative, floored at the tensor's scale; TOL 0 asks for equal bits). Tensors
 * whose name contains a SKIP string are not compared. Prints the worst tensor; exit 0 if all are close,
 * 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: compare_checkpoints A B TOL [SKIP ...]\n");
    return 2;
  }
  SafeTensors a, b;
  char err[512];
  if (st_load(&a, argv[1], err, sizeof err) || st_load(&b, argv[2], err, sizeof err)) {
    fprintf(stderr, "compare_checkpoints: %s\n", err);
    return 1;
  }
  const double tol = atof(argv[3]);
  double worst = 0.0;
  const char *worst_name = "";
  int compared = 0, equal = 0, bad = 0, skipped = 0;
  for (int i = 0; i < a.n_tensors; i++) {
    const StTensor *x = &a.tensors[i], *y = st_find(&b, x->name);
    bool skip = false;
    for (int s = 4; s < argc; s++) skip |= strstr(x->name, argv[s]) != NULL;
    if (skip) {
      skipped++;
      continue;
    }
    if (!y || y->numel != x->numel) {
      fprintf(stderr, "compare_checkpoints: %s missing from %s or of another size\n", x->name, argv[2]);
      bad++;
      continue;
    }
    float *p = malloc((x->numel + 1) * sizeof(float)), *q = malloc((y->numel + 1) * sizeof(float));
    if (st_tensor_to_f32(x, p, err, sizeof err) || st_tensor_to_f32(y, q, err, sizeof err)) {
      fprintf(stderr, "compare_checkpoints: %s\n", err);
      return 1;
    }
    double scale = 0.0, rel = 0.0;
    for (size_t k = 0; k < (size_t)y->numel; k++) scale = fmax(scale, fabs(q[k]));
    bool same = true;
    for (size_t k = 0; k < (size_t)y->numel; k++) {
      same &= p[k] == q[k];
      const double d = fabs((double)p[k] - q[k]) / (fabs((double)q[k]) + scale + 1e-30);
      rel = d > rel || isnan(d) ? d : rel;
    }
    compared++, equal += same;
    if (!(rel <= tol) && !same) bad++;
    if (!(rel <= worst)) worst = rel, worst_name = x->name;
    free(p), free(q);
  }
  printf("compare_checkpoints: %d tensors compared (%d bit-equal), %d skipped; worst relative difference %.3g (%s); "
         "tolerance %g: %s\n",
         compared, equal, skipped, worst, worst_name, tol, bad ? "FAIL" : "ok");
  st_free(&a), st_free(&b);
  return bad ? 1 : 0;
}
