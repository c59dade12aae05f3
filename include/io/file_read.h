/* file_read.h - read a whole regular file into memory.
 *
 * The one place that opens input files by path: a directory, FIFO or device where a file is
 * expected is a clear error (never an attempt to allocate its "size"), and so is a file larger
 * than the caller's limit. Errors name the file. */
#ifndef DIFFUSE_IO_FILE_READ_H
#define DIFFUSE_IO_FILE_READ_H

#include <stddef.h>
#include <stdint.h>

/* *buf gets size + 1 bytes (a NUL after the data, for text parsers); free() it. max_bytes 0: no
 * limit. 0, or -1 + err naming the file (then *buf is NULL). */
int file_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *size, char *err, size_t errlen);
/* The same with the reason alone in why ("is a directory, expected a file"), for callers that
 * report the path their own way. */
int file_read_whole(const char *path, size_t max_bytes, uint8_t **buf, size_t *size, char *why, size_t whylen);

#endif
