/* test_util.h - minimal assertion helpers: every failure is printed and counted, and the test's
 * exit status is non-zero if anything failed. */
#ifndef DIFFUSE_TEST_UTIL_H
#define DIFFUSE_TEST_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "autograd/graph.h"
#include "diffusion/diffusion.h"
#include "io/safetensors.h"

extern int test_failures;

#define EXPECT(cond, ...)                                          \
  do {                                                             \
    if (!(cond)) {                                                 \
      fprintf(stderr, "FAIL %s:%d: (%s) ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                \
      fputc('\n', stderr);                                         \
      test_failures++;                                             \
    }                                                              \
  } while (0)

/* Element-wise |got - want| <= tol * (|want| + max|want|): relative error with a floor set by the
 * tensor's scale (GEMM sums differ in rounding by amounts relative to their terms, not the result).
 * Prints the worst element on failure; returns 1 if close. */
int expect_close(const char *what, const float *got, const float *want, size_t n, double tol);

/* The tests other than test_backend_ops run on the CPU backend, whose memory is host memory: read
 * and write a tensor's data there directly. */
static inline float *cpu_floats(const BackendMem *p) { return (float *)p; }
static inline BackendMem *cpu_mem(const float *p) { return (BackendMem *)p; }

/* Load a safetensors fixture from the source tree (tests/fixtures/NAME); aborts the test if missing. */
void load_fixture(SafeTensors *st, const char *name);
/* Upload a fixture tensor into a new tensor of the graph (any backend); NULL if absent. */
Tensor *fixture_tensor(Graph *g, const SafeTensors *st, const char *name);

/* A process with the default config but this type and DDPM beta schedule (a failure is counted). */
void init_diffusion(Diffusion *d, const char *type, const char *schedule);

int test_report(const char *test_name);

#endif
