/* file_read.c - whole-file reads of regular files; see file_read.h. */
#include "io/file_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int file_read_whole(const char *path, size_t max_bytes, uint8_t **buf, size_t *size, char *why, size_t whylen) {
  *buf = NULL;
  *size = 0;
  const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO does not hang open() */
  if (fd < 0) return errorf(why, whylen, "cannot open: %s", strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) rc = errorf(why, whylen, "cannot stat: %s", strerror(errno));
  else if (S_ISDIR(st.st_mode)) rc = errorf(why, whylen, "is a directory, expected a file");
  else if (!S_ISREG(st.st_mode)) rc = errorf(why, whylen, "not a regular file");
  else if (max_bytes && (uint64_t)st.st_size > max_bytes)
    rc = errorf(why, whylen, "file too large (%lld bytes, the limit is %zu)", (long long)st.st_size, max_bytes);
  if (rc == 0) {
    const size_t n = (size_t)st.st_size;
    uint8_t *b = xmalloc(n + 1);
    size_t got = 0;
    while (got < n) {
      const ssize_t r = read(fd, b + got, n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got != n) {
      free(b);
      rc = errorf(why, whylen, "read error (%zu of %zu bytes): %s", got, n, errno ? strerror(errno) : "file changed");
    } else {
      b[n] = 0;
      *buf = b;
      *size = n;
    }
  }
  close(fd);
  return rc;
}

int file_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *size, char *err, size_t errlen) {
  char why[256];
  if (file_read_whole(path, max_bytes, buf, size, why, sizeof why)) return errorf(err, errlen, "%s: %s", path, why);
  return 0;
}
