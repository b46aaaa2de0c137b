/* cli.h — the subcommands of the tollgate binary; each lives in src/cli/cmd_NAME.c. */
#ifndef TOLLGATE_CLI_CLI_H
#define TOLLGATE_CLI_CLI_H

/* Each returns the process exit code: 0 ok, 1 runtime failure, 2 usage error.
 * argv[0] is the subcommand's name. `--help` prints complete usage to stdout. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct cli_cmd {
    const char *name;
    cli_cmd_fn fn;
    const char *summary; /* one line for `tollgate --help` */
} cli_cmd_t;

int cmd_sim(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_gateway(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_orders(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_traingen(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_canary(int argc, char **argv);
int cmd_perf(int argc, char **argv);

#endif
