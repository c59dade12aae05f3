/* atomic_file.h - write a file so that readers see either the old or the complete new version.
 *
 * atomic_file_open creates PATH.tmp.<pid>; write to ->f; atomic_file_commit flushes, fsyncs and
 * renames it over PATH (a kill at any moment leaves the previous good file); atomic_file_abort
 * removes the temporary. Errors name the file. */
#ifndef DIFFUSE_IO_ATOMIC_FILE_H
#define DIFFUSE_IO_ATOMIC_FILE_H

#include <stdio.h>

typedef struct {
  FILE *f;
  char path[4096], tmp[4200];
} AtomicFile;

int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen);
/* Commits when `ok` (the caller's writes succeeded), else aborts; returns 0 only on success. */
int atomic_file_commit(AtomicFile *a, int ok, char *err, size_t errlen);
/* The whole file from one buffer. */
int atomic_file_write(const char *path, const void *data, size_t n, char *err, size_t errlen);

#endif
