/* test_membw.c — the bandwidth probe's read kernels read every 64-byte line of the buffer once (a stream that skipped or repeated part of it would report a rate for bytes it never read); the probe kept open measures again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/membw.h"
#include "check.h"

/* A buffer of zeros with one 64-bit word set: the kernel's xor of all words gives that
 * word back exactly when it was read an odd number of times. */
static void check_kernel(const char *name, unsigned long long (*sum)(const void *, size_t), size_t bytes) {
    uint64_t *buf = aligned_alloc(4096, bytes);
    memset(buf, 0, bytes);
    int bad = 0;
    for (size_t w = 0; w < bytes / 8; w += 7) { /* words spread over every line and lane */
        buf[w] = 0x5a5a0000u + w;
        bad += sum(buf, bytes) != 0x5a5a0000u + w;
        buf[w] = 0;
    }
    CHECK_MSG(bad == 0, "%s over %zu bytes: %d words not read exactly once", name, bytes, bad);
    free(buf);
}

int main(void) {
    __builtin_cpu_init();
    for (size_t kib = 4; kib <= 64; kib *= 4) {
        if (__builtin_cpu_supports("avx512f")) check_kernel("avx512", membw_sum_avx512, kib << 10);
        if (__builtin_cpu_supports("avx2")) check_kernel("avx2", membw_sum_avx2, kib << 10);
    }
    /* the whole probe: a positive rate, and bad arguments refused */
    double bw = membw_read(2, 1 << 20, 1, 2);
    CHECK(bw > 0);
    CHECK(membw_read(0, 1 << 20, 1, 1) < 0);
    CHECK(membw_read(1, 1 << 20, 1, 65) < 0);
    /* kept open for several measurements (the first fills the buffers, later ones only read) */
    membw_t *b = NULL;
    CHECK_EQ_INT(membw_open(2, 1 << 20, &b), 0);
    CHECK(membw_measure(b, 1, 2) > 0);
    CHECK(membw_measure(b, 2, 1) > 0);
    CHECK(membw_measure(b, 0, 1) < 0);
    membw_close(b);
    CHECK(membw_open(0, 1 << 20, &b) < 0 && b == NULL);
    membw_close(NULL);
    return check_summary("test_membw");
}
