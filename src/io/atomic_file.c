/* atomic_file.c - mkstemp temporary + fsync + rename + directory fsync; see atomic_file.h. */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

static const char TEMP_INFIX[] = ".tmp.";

/* The permissions a plain fopen(path, "w") would give: 0666 minus the umask (mkstemp uses 0600). */
static mode_t default_file_mode(void) {
  const mode_t mask = umask(022);
  umask(mask);
  return 0666 & ~mask;
}

static void atomic_file_release(AtomicFile *a) {
  free(a->path), free(a->tmp);
  a->path = a->tmp = NULL;
  a->f = NULL;
}

int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen) {
  a->f = NULL;
  a->path = a->tmp = NULL;
  if (!path[0]) return errorf(err, errlen, "an output file name is empty: give a path");
  a->path = xstrdup(path);
  a->tmp = xasprintf("%s%sXXXXXX", path, TEMP_INFIX);
  const int fd = mkstemp(a->tmp);
  if (fd < 0) {
    const int e = errno;
    atomic_file_release(a);
    return errorf(err, errlen, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
  }
  if (fchmod(fd, default_file_mode()) != 0 || !(a->f = fdopen(fd, "wb"))) {
    const int e = errno;
    close(fd);
    unlink(a->tmp);
    atomic_file_release(a);
    return errorf(err, errlen, "%s: cannot create: %s", path, strerror(e));
  }
  return 0;
}

/* fsync the directory holding path, so a rename into it is durable. */
static int sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? xasprintf("%.*s", slash == path ? 1 : (int)(slash - path), path) : xstrdup(".");
  const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0) return -1;
  const int rc = fsync(fd);
  close(fd);
  return rc;
}

int atomic_file_commit(AtomicFile *a, int ok, char *err, size_t errlen) {
  int saved = ok ? 0 : errno;
  if (ok && (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)) ok = 0, saved = errno;
  if (fclose(a->f) != 0 && ok) ok = 0, saved = errno;
  a->f = NULL;
  if (ok && rename(a->tmp, a->path) != 0) ok = 0, saved = errno;
  if (!ok) {
    unlink(a->tmp);
    errorf(err, errlen, "%s: write failed: %s", a->path, saved ? strerror(saved) : "I/O error");
    atomic_file_release(a);
    return -1;
  }
  const int rc = sync_parent_dir(a->path);
  if (rc) errorf(err, errlen, "%s: written, but syncing its directory failed: %s", a->path, strerror(errno));
  atomic_file_release(a);
  return rc ? -1 : 0;
}

int atomic_file_write(const char *path, const void *data, size_t n, char *err, size_t errlen) {
  AtomicFile a;
  if (atomic_file_open(&a, path, err, errlen)) return -1;
  return atomic_file_commit(&a, fwrite(data, 1, n, a.f) == n, err, errlen);
}

bool atomic_file_is_temp(const char *name, const char *target) {
  const size_t t = strlen(target), infix = sizeof TEMP_INFIX - 1;
  return strncmp(name, target, t) == 0 && strncmp(name + t, TEMP_INFIX, infix) == 0 && name[t + infix] != '\0';
}
