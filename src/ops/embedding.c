/* embedding.c - sinusoidal timestep embedding and label embedding lookup; see embedding.h. */
#include "ops/embedding.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/error.h"

void timestep_embedding_forward(float *y, const float *t, int B, int dim) {
  CHECK(dim % 2 == 0 && dim >= 4);
  const int half = dim / 2;
  const float neg_log = (float)-log(10000.0);
  for (int b = 0; b < B; b++) {
    float *row = y + (size_t)b * dim;
    for (int i = 0; i < half; i++) {
      const float exponent = neg_log * (float)i / (float)(half - 1);
      const float arg = t[b] * expf(exponent);
      row[i] = sinf(arg);
      row[half + i] = cosf(arg);
    }
  }
}

void embedding_lookup_forward(float *y, const float *table, const int *labels, int B, int dim) {
  for (int b = 0; b < B; b++) memcpy(y + (size_t)b * dim, table + (size_t)labels[b] * dim, (size_t)dim * sizeof(float));
}

void embedding_lookup_backward(float *dtable, const float *dy, const int *labels, int B, int dim) {
  for (int b = 0; b < B; b++)
    for (int i = 0; i < dim; i++) dtable[(size_t)labels[b] * dim + i] += dy[(size_t)b * dim + i];
}
