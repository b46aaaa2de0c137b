/* fuzz_sse.c — libFuzzer target: an SSE stream fed whole and in chunks must give the same events. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"

/* Runs the stream through a reader in chunks of the given sizes (cycled; 0 = whole) and
 * appends "event\0data\0id\0" per event to out. Returns the final status. */
static int run(const uint8_t *data, size_t size, size_t chunk, buf_t *out) {
    sse_reader_t r;
    sse_reader_init(&r, 4096);
    sse_event_t ev;
    int rc = 0;
    size_t p = 0;
    while (p < size && rc >= 0) {
        size_t k = chunk && chunk < size - p ? chunk : size - p;
        rc = sse_feed(&r, data + p, k);
        p += k;
        while (rc >= 0 && (rc = sse_next(&r, &ev)) == 1) {
            if (ev.event[ev.event_len] != '\0' || ev.data[ev.data_len] != '\0' ||
                ev.id[ev.id_len] != '\0')
                abort();
            buf_append(out, ev.event, ev.event_len + 1);
            buf_append(out, ev.data, ev.data_len + 1);
            buf_append(out, ev.id, ev.id_len + 1);
        }
    }
    sse_reader_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    buf_t a, b, w;
    buf_init(&a);
    buf_init(&b);
    buf_init(&w);
    int ra = run(data, size, 0, &a);
    int rb = run(data, size, 1, &b);
    /* Byte-at-a-time may hit the size limit earlier than one chunk would only when the
     * whole input is over it; otherwise the results must agree exactly. */
    if (ra >= 0 && rb >= 0 && (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len))))
        abort();
    /* Write the input as event data: reading it back gives the data with line ends as LF. */
    if (sse_write(&w, size & 1 ? "x" : NULL, (const char *)data, size) == 0) {
        sse_reader_t r;
        sse_reader_init(&r, 0);
        sse_event_t ev;
        if (sse_feed(&r, w.data, w.len) || sse_next(&r, &ev) != 1 || ev.data_len > size)
            abort();
        sse_reader_free(&r);
    }
    buf_free(&a);
    buf_free(&b);
    buf_free(&w);
    return 0;
}
