/* clock.h - monotonic wall-clock seconds for progress lines, throughput reports and op profiles. */
#ifndef DIFFUSE_CORE_CLOCK_H
#define DIFFUSE_CORE_CLOCK_H

#include <time.h>

static inline double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
