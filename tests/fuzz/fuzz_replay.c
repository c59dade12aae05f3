/* fuzz_replay.c - a main() for the libFuzzer harnesses without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file (non-recursive, sorted, hidden files skipped) of each
 * directory given, so the fuzz corpora and their regression inputs run as ordinary tests in any
 * build (gcc Release, ASan + UBSan). A crash or sanitizer report fails the test; so does a
 * directory that cannot be read or holds no inputs.
 * Usage: fuzz_corpus_NAME DIR... */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole file, or NULL with a message on stderr. */
static uint8_t *read_input(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  if (!f || fstat(fileno(f), &st) != 0) {
    fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
    if (f) fclose(f);
    return NULL;
  }
  uint8_t *buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
  *size = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
  const int bad = !buf || ferror(f) || *size != (size_t)st.st_size;
  fclose(f);
  if (bad) {
    fprintf(stderr, "%s: read error\n", path);
    free(buf);
    return NULL;
  }
  return buf;
}

static int not_hidden(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Run every regular file of dir; the number run, or -1. */
static int replay_dir(const char *dir) {
  struct dirent **names;
  const int n = scandir(dir, &names, not_hidden, alphasort);
  if (n < 0) {
    fprintf(stderr, "%s: cannot read directory: %s\n", dir, strerror(errno));
    return -1;
  }
  int run = 0, failed = 0;
  for (int i = 0; i < n; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
    free(names[i]);
    if (failed || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    size_t size;
    uint8_t *data = read_input(path, &size);
    if (!data) {
      failed = 1;
      continue;
    }
    fprintf(stderr, "  %s (%zu bytes)\n", path, size); /* the last one named is the culprit of a crash */
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    run++;
  }
  free(names);
  return failed ? -1 : run;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
    return 2;
  }
  for (int a = 1; a < argc; a++) {
    const int run = replay_dir(argv[a]);
    if (run <= 0) {
      if (run == 0) fprintf(stderr, "%s: no inputs\n", argv[a]);
      return 1;
    }
    printf("%s: %d inputs ran\n", argv[a], run);
  }
  return 0;
}
