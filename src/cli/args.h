/* args.h - table-driven flag parsing for the subcommands ("--flag value" and "--flag=value"). */
#ifndef DIFFUSE_CLI_ARGS_H
#define DIFFUSE_CLI_ARGS_H

#include <limits.h>
#include <stdbool.h>

typedef enum { ARG_STRING, ARG_INT, ARG_DOUBLE, ARG_FLAG, ARG_LIST } ArgType;

#define ARG_LIST_MAX 64
typedef struct { /* ARG_LIST: every occurrence of a repeatable flag, in order */
  const char *items[ARG_LIST_MAX];
  int n;
} ArgList;

typedef struct {
  const char *flag; /* "--config" */
  ArgType type;
  void *dst; /* const char **, int *, double *, bool *, ArgList * */
} ArgSpec;

/* An ARG_INT destination initialised to ARG_UNSET still holds it when the flag was not given
 * (no value parses to it). ARG_DOUBLE values are always finite, so NAN can mark "not given". */
#define ARG_UNSET INT_MIN

/* Parse argv[1..] (argv[0] is the command name). Errors print a message naming the flag. Returns 0;
 * 2 for a usage error (unknown flag, missing value, a value that is not a number); 1 for a number
 * that cannot be used (out of int range, NaN, infinite). */
int args_parse(int argc, char **argv, const ArgSpec *specs, int n_specs, const char *command);

#endif
