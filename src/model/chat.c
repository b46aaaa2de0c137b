/* chat.c — render chat messages with the template families the engine serves. */
#define _GNU_SOURCE /* memmem */
#include "model/chat.h"

#include <errno.h>
#include <string.h>

chat_tmpl_t chat_template_detect(const char *tmpl, size_t len) {
    if (!tmpl) return CHAT_TMPL_UNKNOWN;
#define HAS(s) (memmem(tmpl, len, (s), sizeof(s) - 1) != NULL)
    if (HAS("<|im_start|>")) return CHAT_TMPL_CHATML;
    /* Llama-2's template wraps the system prompt in <<SYS>>; Mistral's has none */
    if (HAS("[INST]")) return HAS("<<SYS>>") ? CHAT_TMPL_LLAMA2 : CHAT_TMPL_MISTRAL;
    if (HAS("<|user|>") && HAS("<|end|>")) return CHAT_TMPL_PHI3;
#undef HAS
    return CHAT_TMPL_UNKNOWN;
}

chat_tmpl_t chat_template_for_gguf(const gguf_file_t *f) {
    gguf_str_t s;
    if (gguf_get_str(f, "tokenizer.chat_template", &s) == 0) {
        chat_tmpl_t id = chat_template_detect(s.ptr, (size_t)s.len);
        if (id != CHAT_TMPL_UNKNOWN) return id;
    }
    if (gguf_get_str(f, "general.architecture", &s) == 0) {
        if (gguf_str_eq(s, "phi3")) return CHAT_TMPL_PHI3;
        /* no template in the file: Llama/Mistral vocabularies are identical, and the
         * service's stable model is Mistral */
        if (gguf_str_eq(s, "llama")) return CHAT_TMPL_MISTRAL;
    }
    return CHAT_TMPL_UNKNOWN;
}

static const struct {
    const char *name;
    chat_tmpl_t id;
} NAMES[] = {
    {"llama2", CHAT_TMPL_LLAMA2}, {"llama-2", CHAT_TMPL_LLAMA2}, {"mistral", CHAT_TMPL_MISTRAL},
    {"phi3", CHAT_TMPL_PHI3},     {"phi-3", CHAT_TMPL_PHI3},     {"chatml", CHAT_TMPL_CHATML},
};

chat_tmpl_t chat_template_by_name(const char *name) {
    for (size_t i = 0; name && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (!strcmp(name, NAMES[i].name)) return NAMES[i].id;
    return CHAT_TMPL_UNKNOWN;
}

const char *chat_template_name(chat_tmpl_t id) {
    switch (id) {
    case CHAT_TMPL_LLAMA2:
        return "llama2";
    case CHAT_TMPL_MISTRAL:
        return "mistral";
    case CHAT_TMPL_PHI3:
        return "phi3";
    case CHAT_TMPL_CHATML:
        return "chatml";
    default:
        return "unknown";
    }
}

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int role_of(const char *r) {
    if (!r) return -1;
    if (!strcmp(r, "system")) return ROLE_SYSTEM;
    if (!strcmp(r, "user")) return ROLE_USER;
    if (!strcmp(r, "assistant")) return ROLE_ASSISTANT;
    return -1;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Append s with surrounding whitespace removed (Jinja's strip()). */
static int append_strip(buf_t *out, const char *s, size_t n) {
    while (n && is_ws(*s)) s++, n--;
    while (n && is_ws(s[n - 1])) n--;
    return buf_append(out, s, n);
}

/* [INST] families. The system prompt goes into the next user turn: Llama-2 as a
 * <<SYS>> block (its template), Mistral as "system\n\nuser" (Mistral's template).
 * Llama-2 strips every message and opens each later turn with <s>; Mistral does not. */
static int apply_inst(int llama2, const chat_msg_t *m, size_t n, buf_t *out) {
    buf_t turn;
    buf_init(&turn);
    const char *sys = NULL;
    size_t started = 0; /* turns written: only the first goes without BOS */
    int rc = 0;
    for (size_t i = 0; i <= n && !rc; i++) {
        int role = i < n ? role_of(m[i].role) : -2;
        if (role == ROLE_SYSTEM) {
            if (sys) { /* several system messages: join them into one */
                rc |= buf_appends(&turn, "\n\n");
            }
            rc |= buf_appends(&turn, m[i].content);
            sys = "";
            continue;
        }
        if (role == ROLE_USER || (role == -2 && sys)) {
            const char *user = role == ROLE_USER ? m[i].content : "";
            buf_t c;
            buf_init(&c);
            if (sys && llama2) {
                rc |= buf_appends(&c, "<<SYS>>\n");
                rc |= buf_append(&c, turn.data, turn.len);
                rc |= buf_appends(&c, "\n<</SYS>>\n\n");
            } else if (sys) {
                rc |= buf_append(&c, turn.data, turn.len);
                rc |= buf_appends(&c, "\n\n");
            }
            rc |= buf_appends(&c, user);
            if (llama2 && started) rc |= buf_appends(out, "<s>");
            rc |= buf_appends(out, "[INST] ");
            if (llama2)
                rc |= append_strip(out, c.data ? c.data : "", c.len);
            else
                rc |= buf_append(out, c.data, c.len);
            rc |= buf_appends(out, " [/INST]");
            buf_free(&c);
            buf_reset(&turn);
            sys = NULL;
            started++;
        } else if (role == ROLE_ASSISTANT) {
            if (llama2) {
                rc |= buf_appends(out, " ");
                rc |= append_strip(out, m[i].content, strlen(m[i].content));
                rc |= buf_appends(out, " </s>");
            } else {
                rc |= buf_appends(out, m[i].content);
                rc |= buf_appends(out, "</s>");
            }
            started++;
        } else if (role == -1) {
            rc = -EINVAL;
        }
    }
    buf_free(&turn);
    return rc == -EINVAL ? rc : rc ? -ENOMEM : 0;
}

int chat_apply(chat_tmpl_t id, const chat_msg_t *msgs, size_t n, int add_generation_prompt,
               buf_t *out) {
    for (size_t i = 0; i < n; i++)
        if (role_of(msgs[i].role) < 0 || !msgs[i].content) return -EINVAL;
    int rc = 0;
    switch (id) {
    case CHAT_TMPL_LLAMA2:
    case CHAT_TMPL_MISTRAL:
        return apply_inst(id == CHAT_TMPL_LLAMA2, msgs, n, out);
    case CHAT_TMPL_PHI3:
        for (size_t i = 0; i < n; i++)
            rc |= buf_appendf(out, "<|%s|>\n%s<|end|>\n", msgs[i].role, msgs[i].content);
        if (add_generation_prompt) rc |= buf_appends(out, "<|assistant|>\n");
        break;
    case CHAT_TMPL_CHATML:
        for (size_t i = 0; i < n; i++)
            rc |= buf_appendf(out, "<|im_start|>%s\n%s<|im_end|>\n", msgs[i].role, msgs[i].content);
        if (add_generation_prompt) rc |= buf_appends(out, "<|im_start|>assistant\n");
        break;
    default:
        return -EINVAL;
    }
    return rc ? -ENOMEM : 0;
}
