/* embedding.c - sinusoidal timestep embedding; see embedding.h. */
#include "ops/embedding.h"

#include <math.h>
#include <stddef.h>

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
