/* proxy_sse.h — the stream relay of the proxy: SSE event framing, the usage event, and
 * passing complete events on to a streaming client. */
#ifndef TOLLGATE_GATEWAY_PROXY_SSE_H
#define TOLLGATE_GATEWAY_PROXY_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/json.h"

struct preq;

/* Length of the first complete SSE event in p[0..n) including its blank-line
 * terminator (LF LF, CRLF CRLF, or CR CR mixes), or 0 when none is complete yet. */
size_t proxy_sse_event_len(const char *p, size_t n);

/* Look at one raw SSE event (its lines, blank-line terminator optional) for a usage
 * object. Returns 1 when one was found (*prompt, *completion set, -1 for a field that is
 * missing) and *usage_only says whether the event carries nothing else for the client
 * (an empty "choices" array, as OpenAI's final usage chunk has); 0 when the event has no
 * usage. toks/cap: scratch for the JSON parser. */
int proxy_sse_usage(const char *ev, size_t len, json_tok_t *toks, size_t cap, int64_t *prompt,
                    int64_t *completion, int *usage_only);

/* Send the head of a streamed response (once) and leave only the total deadline on the
 * timer. 0, or -1 when the client is gone. */
int proxy_relay_commit(struct preq *p);

/* Forward the complete events buffered in p->resp (all of it when final); keep a partial
 * one. Takes the usage from the stream and strips the usage-only event when the client
 * did not ask for usage. 0, or -1 when the client is gone or too slow. */
int proxy_relay_forward(struct preq *p, int final);

#endif
