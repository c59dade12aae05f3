/* run_dir.h - the run directory of `diffuse train`: never overwrite a run by accident, never share
 * it between two trainers, and clean up what a killed trainer left.
 *
 * A directory holds a run when it has config.json, log.jsonl or ckpt.safetensors. Starting a
 * fresh run there needs --force (which removes the old log, checkpoint and sample grids);
 * --resume continues it. report.html (made from those files) does not make a run, and goes with
 * --force too. The lock is a POSIX record lock (fcntl) on the empty file OUT/.lock: the
 * kernel releases it when the trainer exits, however it exits, and reports the holder's pid. */
#ifndef DIFFUSE_CLI_RUN_DIR_H
#define DIFFUSE_CLI_RUN_DIR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  int lock_fd;
} RunDir;

/* Before any work: refuse a fresh run (no resume, no force) into a directory that holds one. */
int run_dir_check(const char *dir, bool resume, bool force, char *err, size_t errlen);
/* Create dir and dir/samples, take the lock (an error names the holder's pid), check again under
 * the lock, remove stale temporaries of our own files, and with force the old run's files. */
int run_dir_open(RunDir *rd, const char *dir, bool resume, bool force, char *err, size_t errlen);
void run_dir_close(RunDir *rd);

#endif
