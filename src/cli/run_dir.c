/* run_dir.c - create, check, lock and clean the run directory; see run_dir.h. */
#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic_file.h"

static const char *const RUN_FILES[] = {"config.json", "log.jsonl", "ckpt.safetensors"};
#define N_RUN_FILES (int)(sizeof RUN_FILES / sizeof RUN_FILES[0])
/* Made from the run files (train/run_report.h): not a run by itself, but the old run's with --force. */
static const char REPORT_NAME[] = "report.html";
static const char LOCK_NAME[] = ".lock", SAMPLES[] = "samples";

static bool exists_in(const char *dir, const char *name) {
  char *p = xasprintf("%s/%s", dir, name);
  struct stat st;
  const bool yes = lstat(p, &st) == 0;
  free(p);
  return yes;
}

static const char *run_file_in(const char *dir) {
  for (int i = 0; i < N_RUN_FILES; i++)
    if (exists_in(dir, RUN_FILES[i])) return RUN_FILES[i];
  return NULL;
}

int run_dir_check(const char *dir, bool resume, bool force, char *err, size_t errlen) {
  if (!dir[0]) return errorf(err, errlen, "--out: the output directory name is empty");
  struct stat st;
  if (stat(dir, &st) != 0) return 0; /* created later */
  if (!S_ISDIR(st.st_mode)) return errorf(err, errlen, "--out %s: exists and is not a directory", dir);
  const char *found = resume || force ? NULL : run_file_in(dir);
  if (found)
    return errorf(err, errlen,
                  "--out %s already holds a run (%s): continue it with --resume %s/ckpt.safetensors, start over with "
                  "--force (deletes its log, checkpoint and sample grids), or choose another --out",
                  dir, found, dir);
  return 0;
}

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen) {
  char *buf = xstrdup(path);
  int rc = 0;
  for (char *p = buf + 1; *p && rc == 0; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0755) && errno != EEXIST) rc = errorf(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
      *p = '/';
    }
  if (rc == 0 && mkdir(buf, 0755) && errno != EEXIST) rc = errorf(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
  free(buf);
  return rc;
}

/* Take a POSIX record lock on OUT/.lock (F_GETLK then names the holder's pid; nothing is written into
 * the file, so a refused or failed start changes nothing). */
static int take_lock(RunDir *rd, const char *dir, char *err, size_t errlen) {
  char *path = xasprintf("%s/%s", dir, LOCK_NAME);
  const int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  int rc = 0;
  struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fd < 0) {
    rc = errorf(err, errlen, "%s: cannot open the run's lock file: %s", path, strerror(errno));
  } else if (fcntl(fd, F_SETLK, &lk) != 0) {
    const int e = errno;
    struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (e == EACCES || e == EAGAIN) {
      char pid[32] = "unknown";
      if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK) snprintf(pid, sizeof pid, "%ld", (long)who.l_pid);
      rc = errorf(err, errlen, "--out %s is in use by another diffuse train (pid %s): wait for it or choose another --out",
                  dir, pid);
    } else {
      rc = errorf(err, errlen, "%s: cannot lock: %s", path, strerror(e));
    }
    close(fd);
  } else {
    rd->lock_fd = fd;
  }
  free(path);
  return rc;
}

/* Remove entries of dir that `doomed` selects (files only; links are removed, never followed). */
static void remove_matching(const char *dir, bool (*doomed)(const char *name)) {
  DIR *dp = opendir(dir);
  if (!dp) return;
  for (struct dirent *e; (e = readdir(dp)) != NULL;) {
    if (!doomed(e->d_name)) continue;
    char *p = xasprintf("%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && !S_ISDIR(st.st_mode)) unlink(p);
    free(p);
  }
  closedir(dp);
}

static bool is_stale_run_temp(const char *name) {
  for (int i = 0; i < N_RUN_FILES; i++)
    if (atomic_file_is_temp(name, RUN_FILES[i])) return true;
  return atomic_file_is_temp(name, REPORT_NAME);
}

static bool is_sample_grid_or_temp(const char *name) {
  return strncmp(name, "step_", 5) == 0 && strstr(name, ".png") != NULL;
}

static bool is_stale_grid_temp(const char *name) {
  return strncmp(name, "step_", 5) == 0 && strstr(name, ".png.tmp.") != NULL;
}

static bool is_old_run_file(const char *name) {
  for (int i = 0; i < N_RUN_FILES; i++)
    if (strcmp(name, RUN_FILES[i]) == 0) return true;
  return strcmp(name, REPORT_NAME) == 0;
}

int run_dir_open(RunDir *rd, const char *dir, bool resume, bool force, char *err, size_t errlen) {
  rd->lock_fd = -1;
  if (make_dirs(dir, err, errlen)) return -1;
  char *samples = xasprintf("%s/%s", dir, SAMPLES);
  int rc = take_lock(rd, dir, err, errlen);
  if (rc == 0) rc = run_dir_check(dir, resume, force, err, errlen); /* another run may have started since */
  if (rc == 0 && mkdir(samples, 0755) && errno != EEXIST)
    rc = errorf(err, errlen, "%s: cannot create: %s", samples, strerror(errno));
  struct stat st;
  if (rc == 0 && (lstat(samples, &st) != 0 || !S_ISDIR(st.st_mode)))
    rc = errorf(err, errlen, "%s: is not a directory (a symbolic link?): remove it; grids are only written into a real "
                "directory", samples);
  if (rc == 0) {
    remove_matching(dir, is_stale_run_temp);
    remove_matching(samples, is_stale_grid_temp);
    if (force) {
      remove_matching(dir, is_old_run_file);
      remove_matching(samples, is_sample_grid_or_temp);
    }
  }
  free(samples);
  if (rc) run_dir_close(rd);
  return rc;
}

void run_dir_close(RunDir *rd) {
  if (rd->lock_fd >= 0) close(rd->lock_fd);
  rd->lock_fd = -1;
}
