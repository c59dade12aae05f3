/* error.c - invariant checks, checked allocation and error-message formatting. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void check_failed(const char *expr, const char *file, int line) {
  fprintf(stderr, "diffuse: internal error: CHECK(%s) failed at %s:%d\n", expr, file, line);
  abort();
}

static void *oom(size_t n) {
  char size[32];
  fprintf(stderr, "diffuse: out of memory allocating %s (%zu bytes); free memory or make the job smaller\n",
          format_bytes(size, sizeof size, (double)n), n);
  exit(1);
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

char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  CHECK(n >= 0);
  char *s = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

size_t memory_total_bytes(void) {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

const char *format_bytes(char *buf, size_t n, double bytes) {
  static const char *const UNITS[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 5) bytes /= 1024.0, u++;
  snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", bytes, UNITS[u]);
  return buf;
}

const char *format_duration(char *buf, size_t n, double s) {
  if (!(s >= 0) || s > 1e9) snprintf(buf, n, "?");
  else if (s < 60) snprintf(buf, n, "%.0fs", s);
  else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
  return buf;
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
