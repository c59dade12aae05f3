/* atomic_file.h - write a file so that readers see either the old or the complete new version.
 *
 * atomic_file_open creates a new temporary PATH.tmp.XXXXXX beside PATH with O_CREAT | O_EXCL
 * (mkstemp), so it never follows or reuses a file or symlink someone planted there; write to ->f;
 * atomic_file_commit flushes, fsyncs and renames it over PATH, then fsyncs the directory so the
 * new name survives a power cut (a kill at any moment leaves the previous good file and at most a
 * stale temporary, which atomic_file_is_temp recognises); committing with ok = 0 removes the temporary.
 * Paths of any length. Errors name the file. */
#ifndef DIFFUSE_IO_ATOMIC_FILE_H
#define DIFFUSE_IO_ATOMIC_FILE_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
  FILE *f;
  char *path, *tmp;
} AtomicFile;

int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen);
/* Commits when `ok` (the caller's writes succeeded), else aborts; returns 0 only on success. */
int atomic_file_commit(AtomicFile *a, int ok, char *err, size_t errlen);
/* The whole file from one buffer. */
int atomic_file_write(const char *path, const void *data, size_t n, char *err, size_t errlen);
/* Whether a directory entry named `name` is a temporary of atomic_file_open for a file named `target`
 * (TARGET.tmp.XXXXXX, or TARGET.tmp.<pid> from older versions). */
bool atomic_file_is_temp(const char *name, const char *target);

#endif
