/* perf_batch.h — `tollgate perf batch`: engine steps with several sequences decoding together. */
#ifndef TOLLGATE_CLI_PERF_BATCH_H
#define TOLLGATE_CLI_PERF_BATCH_H

/* Load the model at path and, for each count in seqs, time `steps` decode steps of that
 * many sequences together from position pos on `threads` threads; one `perf:` line per
 * count, and with breakdown a `perf: breakdown ms_per_step` line after it (profile.h).
 * The process exit code: 0, 1 (load or memory failure), 2 (bad arguments). */
int perf_batch(const char *path, int threads, const int *seqs, int n_seqs, int steps, int pos, int breakdown);

#endif
