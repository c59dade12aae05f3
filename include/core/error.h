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

/* Allocation that cannot fail silently: out of memory is reported with the size asked for and exits
 * with code 1 (an environment error, not a crash). Sizes a user chooses (model, batch, dataset)
 * are checked against memory_total_bytes() before they are allocated, with a message naming the
 * config key to change. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* A new string formatted like printf, of any length (paths are built with it, never truncated). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xmalloc_aligned(size_t alignment, size_t n); /* release with free() */

/* Physical memory of this machine in bytes (0 if unknown). */
size_t memory_total_bytes(void);
/* bytes as "1.5 GiB" / "300 MiB" into buf (for messages). */
const char *format_bytes(char *buf, size_t n, double bytes);
/* seconds as "45s" / "3m07s" / "2h05m" into buf ("?" when negative, NaN or absurd), for progress and ETAs. */
const char *format_duration(char *buf, size_t n, double seconds);

/* snprintf into an error buffer (may be NULL); always returns -1 so callers can `return errorf(...)`. */
int errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
