/* commands.h - entry points of the subcommands (argv[0] is the command name). */
#ifndef DIFFUSE_CLI_COMMANDS_H
#define DIFFUSE_CLI_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_loss(int argc, char **argv); /* diffuse eval loss (cmd_eval_loss.c) */
int cmd_eval_accuracy(int argc, char **argv); /* diffuse eval accuracy (cmd_eval_accuracy.c) */
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
