/* fuzz_task.c — libFuzzer target: the task endpoint's template rendering (task_render) and
 * output post-processing (task_post, every rule). Input: template, a NUL, then the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "gateway/task.h"
#include "gateway/taskcfg.h"

static size_t count(const char *s, const char *pat) {
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, pat)); p += strlen(pat))
        n++;
    return n;
}

static int space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *sep = memchr(data, 0, size);
    size_t tl = sep ? (size_t)(sep - (const char *)data) : size;
    char *tmpl = malloc(tl + 1);
    if (!tmpl)
        return 0;
    memcpy(tmpl, data, tl);
    tmpl[tl] = '\0';
    const char *input = sep ? sep + 1 : "";
    size_t il = sep ? size - tl - 1 : 0;

    /* Every "{input}" of the template (counted left to right, without overlap) is replaced. */
    buf_t out;
    buf_init(&out);
    if (task_render(tmpl, input, il, &out) == 0) {
        size_t k = count(tmpl, "{input}");
        if (out.len != tl - 7 * k + k * il)
            abort();
        if (k == 0 && (out.len != tl || memcmp(out.data, tmpl, tl)))
            abort();
    }

    /* Each rule on a copy of the rendered text: the result is inside it, NUL-terminated, and
     * (for trim and first line) has no space at either end. */
    for (int rule = TASK_POST_NONE; rule <= TASK_POST_FIRST_LINE; rule++) {
        size_t n = out.len;
        char *s = malloc(n + 1);
        if (!s)
            break;
        if (n)
            memcpy(s, out.data, n);
        s[n] = '\0';
        task_post(rule, s, &n);
        if (n > out.len || s[n] != '\0')
            abort();
        if (rule != TASK_POST_NONE && n && (space(s[0]) || space(s[n - 1])))
            abort();
        if (rule == TASK_POST_FIRST_LINE && memchr(s, '\n', n))
            abort();
        if (rule == TASK_POST_NONE && (n != out.len || (n && memcmp(s, out.data, n))))
            abort();
        free(s);
    }
    buf_free(&out);
    free(tmpl);
    return 0;
}
