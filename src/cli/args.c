/* args.c - flag parsing; see args.h. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0, 2 (not a value of the flag's type: a usage error) or 1 (a number, but not a usable one). */
static int parse_value(const ArgSpec *s, const char *v, const char *command) {
  char *end = NULL;
  errno = 0;
  switch (s->type) {
    case ARG_STRING: *(const char **)s->dst = v; return 0;
    case ARG_INT: {
      const long x = strtol(v, &end, 10);
      if (*end || end == v) break;
      if (errno || x < -2147483647L || x > 2147483647L) {
        fprintf(stderr, "diffuse %s: %s %s: out of range (at most 2147483647 in magnitude)\n", command, s->flag, v);
        return 1;
      }
      *(int *)s->dst = (int)x;
      return 0;
    }
    case ARG_DOUBLE: {
      const double x = strtod(v, &end);
      if (*end || end == v) break;
      if (!isfinite(x) || (errno == ERANGE && x != 0)) {
        fprintf(stderr, "diffuse %s: %s %s: must be a finite number\n", command, s->flag, v);
        return 1;
      }
      *(double *)s->dst = x;
      return 0;
    }
    case ARG_LIST: {
      ArgList *l = s->dst;
      if (l->n == ARG_LIST_MAX) {
        fprintf(stderr, "diffuse %s: %s given more than %d times\n", command, s->flag, ARG_LIST_MAX);
        return 2;
      }
      l->items[l->n++] = v;
      return 0;
    }
    case ARG_FLAG: break;
  }
  fprintf(stderr, "diffuse %s: %s: invalid value '%.80s' (expected %s)\n", command, s->flag, v,
          s->type == ARG_INT ? "an integer" : "a number");
  return 2;
}

int args_parse(int argc, char **argv, const ArgSpec *specs, int n_specs, const char *command) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *eq = strchr(a, '=');
    const size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const ArgSpec *s = NULL;
    for (int k = 0; k < n_specs && !s; k++)
      if (strlen(specs[k].flag) == len && strncmp(specs[k].flag, a, len) == 0) s = &specs[k];
    if (!s) {
      fprintf(stderr, "diffuse %s: unknown option '%.*s' (see diffuse %s --help)\n", command, len > 80 ? 80 : (int)len, a,
              command);
      return 2;
    }
    if (s->type == ARG_FLAG) {
      if (eq) {
        fprintf(stderr, "diffuse %s: %s takes no value\n", command, s->flag);
        return 2;
      }
      *(bool *)s->dst = true;
      continue;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v) {
      fprintf(stderr, "diffuse %s: %s needs a value\n", command, s->flag);
      return 2;
    }
    const int rc = parse_value(s, v, command);
    if (rc) return rc;
  }
  return 0;
}
