/* membw.h — this machine's memory read bandwidth: vectorised streaming reads of a large buffer on every thread at once. */
#ifndef TOLLGATE_BENCH_MEMBW_H
#define TOLLGATE_BENCH_MEMBW_H

#include <stddef.h>

/* Read bandwidth in bytes/s with `threads` threads each reading its own buffer of
 * bytes_per_thread (rounded to 4 KiB, touched first) `passes` times; the best pass of
 * `rounds`. AVX-512 loads when the CPU has them, else AVX2, else 64-bit loads.
 * Negative errno on failure. */
double membw_read(int threads, size_t bytes_per_thread, int passes, int rounds);

/* The same probe kept for several measurements (between the segments of a timed run):
 * membw_open allocates the buffers (negative errno on failure), the first
 * membw_measure fills them before timing, later ones only read. */
typedef struct membw membw_t;
int membw_open(int threads, size_t bytes_per_thread, membw_t **out);
double membw_measure(membw_t *b, int passes, int rounds);
void membw_close(membw_t *b);

/* The ISA kernels (membw_avx512.c): the xor of the buffer's 64-bit words, so the loads are not dead. */
unsigned long long membw_sum_avx512(const void *p, size_t bytes);
unsigned long long membw_sum_avx2(const void *p, size_t bytes);

#endif
