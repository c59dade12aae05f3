/* error.c - invariant checks, checked allocation and error-message formatting. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void check_failed(const char *expr, const char *file, int line) {
  fprintf(stderr, "diffuse: internal error: CHECK(%s) failed at %s:%d\n", expr, file, line);
  abort();
}

static void *oom(size_t n) {
  fprintf(stderr, "diffuse: out of memory allocating %zu bytes\n", n);
  abort();
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  return p ? p : oom(n);
}

void *xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  return p ? p : oom(count * size);
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  return q ? q : oom(n);
}

void *xmalloc_aligned(size_t alignment, size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, alignment, n ? n : 1) != 0) return oom(n);
  return p;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = xmalloc(n);
  memcpy(d, s, n);
  return d;
}

int errorf(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}
