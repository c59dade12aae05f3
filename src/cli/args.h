/* args.h - table-driven flag parsing for the subcommands ("--flag value" and "--flag=value"). */
#ifndef DIFFUSE_CLI_ARGS_H
#define DIFFUSE_CLI_ARGS_H

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

/* Parse argv[1..] (argv[0] is the command name). Unknown flags, missing or malformed values print
 * a usage error naming the flag; returns 0 on success, 2 on a usage error. */
int args_parse(int argc, char **argv, const ArgSpec *specs, int n_specs, const char *command);

#endif
