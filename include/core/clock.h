/* clock.h - wall-clock seconds for progress lines and throughput reports. */
#ifndef DIFFUSE_CLI_CLOCK_H
#define DIFFUSE_CLI_CLOCK_H

#include <time.h>

static inline double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
