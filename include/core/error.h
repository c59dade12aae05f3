/* error.h - invariant checks and fatal errors.
 *
 * CHECK(cond) guards programmer invariants and stays on in release builds; a failure prints
 * file:line and aborts. User and environment errors are not CHECKs: library code returns an
 * error status with a message (see io/), and the CLI prints it and exits with code 1.
 */
#ifndef DIFFUSE_CORE_ERROR_H
#define DIFFUSE_CORE_ERROR_H

#include <stddef.h>

#define CHECK(cond) \
  do { \
    if (!(cond)) check_failed(#cond, __FILE__, __LINE__); \
  } while (0)

_Noreturn void check_failed(const char *expr, const char *file, int line);

/* Allocation that cannot fail silently: out of memory is reported and aborts. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
void *xmalloc_aligned(size_t alignment, size_t n); /* release with free() */

/* snprintf into an error buffer (may be NULL); always returns -1 so callers can `return errorf(...)`. */
int errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
