/* atomic_file.c - temp file + fsync + rename; see atomic_file.h. */
#include "io/atomic_file.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen) {
  a->f = NULL;
  if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
      snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof a->tmp)
    return errorf(err, errlen, "%s: path too long", path);
  a->f = fopen(a->tmp, "wb");
  if (!a->f) return errorf(err, errlen, "%s: cannot create %s: %s", path, a->tmp, strerror(errno));
  return 0;
}

int atomic_file_commit(AtomicFile *a, int ok, char *err, size_t errlen) {
  int saved = ok ? 0 : errno;
  if (ok && (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)) ok = 0, saved = errno;
  if (fclose(a->f) != 0 && ok) ok = 0, saved = errno;
  a->f = NULL;
  if (ok && rename(a->tmp, a->path) != 0) ok = 0, saved = errno;
  if (!ok) {
    unlink(a->tmp);
    return errorf(err, errlen, "%s: write failed: %s", a->path, saved ? strerror(saved) : "I/O error");
  }
  return 0;
}

int atomic_file_write(const char *path, const void *data, size_t n, char *err, size_t errlen) {
  AtomicFile a;
  if (atomic_file_open(&a, path, err, errlen)) return -1;
  return atomic_file_commit(&a, fwrite(data, 1, n, a.f) == n, err, errlen);
}
