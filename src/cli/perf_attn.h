/* perf_attn.h — `tollgate perf attn`: attention of one layer timed per kernel set (called by cmd_perf.c). */
#ifndef TOLLGATE_CLI_PERF_ATTN_H
#define TOLLGATE_CLI_PERF_ATTN_H

#include <stdio.h>

/* argv: the options after `perf attn`; the process exit code (0, 1 out of memory,
 * 2 usage error). */
int perf_attn(int argc, char **argv);
/* The paragraph of `tollgate perf --help` that describes it. */
void perf_attn_usage(FILE *o);

#endif
