/* test_chat.c — chat templates: detection and exact rendered prompts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/buf.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

static const char *render(chat_tmpl_t id, const chat_msg_t *m, size_t n, int gen, buf_t *b) {
    buf_reset(b);
    int rc = chat_apply(id, m, n, gen, b);
    CHECK_EQ_INT(rc, 0);
    return b->data ? b->data : "";
}

#define S(x) x, sizeof(x) - 1

static void test_detect(void) {
    /* Llama-2 (HF meta-llama/Llama-2-*-chat) */
    CHECK_EQ_INT(chat_template_detect(S("{% if messages[0]['role'] == 'system' %}...{{ bos_token + "
                                        "'[INST] ' + content.strip() + ' [/INST]' }}"
                                        "'<<SYS>>\\n' + system_message")),
                 CHAT_TMPL_LLAMA2);
    /* Mistral instruct */
    CHECK_EQ_INT(chat_template_detect(S("{{ bos_token }}{% for message in messages %}{{ '[INST] ' "
                                        "+ message['content'] + ' [/INST]' }}{{ message['content'] "
                                        "+ eos_token}}")),
                 CHAT_TMPL_MISTRAL);
    /* Phi-3 (the reference model's own template) */
    CHECK_EQ_INT(chat_template_detect(S("{{ bos_token }}{% for message in messages %}{% if "
                                        "(message['role'] == 'user') %}{{'<|user|>' + '\\n' + "
                                        "message['content'] + '<|end|>' + '\\n' + '<|assistant|>' "
                                        "+ '\\n'}}")),
                 CHAT_TMPL_PHI3);
    CHECK_EQ_INT(chat_template_detect(S("{% for m in messages %}<|im_start|>{{m.role}}")),
                 CHAT_TMPL_CHATML);
    /* Zephyr has <|user|> but ends turns with </s>: not Phi-3 */
    CHECK_EQ_INT(chat_template_detect(S("<|user|>\n{{ message['content'] }}{{ eos_token }}")),
                 CHAT_TMPL_UNKNOWN);
    CHECK_EQ_INT(chat_template_detect(NULL, 0), CHAT_TMPL_UNKNOWN);
    CHECK_EQ_INT(chat_template_by_name("llama2"), CHAT_TMPL_LLAMA2);
    CHECK_EQ_INT(chat_template_by_name("mistral"), CHAT_TMPL_MISTRAL);
    CHECK_EQ_INT(chat_template_by_name("phi3"), CHAT_TMPL_PHI3);
    CHECK_EQ_INT(chat_template_by_name("phi-3"), CHAT_TMPL_PHI3);
    CHECK_EQ_INT(chat_template_by_name("chatml"), CHAT_TMPL_CHATML);
    CHECK_EQ_INT(chat_template_by_name("vicuna"), CHAT_TMPL_UNKNOWN);
    CHECK_EQ_STR(chat_template_name(CHAT_TMPL_PHI3), "phi3");
    CHECK_EQ_STR(chat_template_name(CHAT_TMPL_UNKNOWN), "unknown");
}

static void test_render(void) {
    buf_t b;
    buf_init(&b);
    chat_msg_t one[] = {{"user", "hi"}};
    chat_msg_t conv[] = {{"system", "Be brief."},
                         {"user", "What is 2+2?"},
                         {"assistant", "4"},
                         {"user", "And 3+3?"}};

    CHECK_EQ_STR(render(CHAT_TMPL_MISTRAL, one, 1, 1, &b), "[INST] hi [/INST]");
    CHECK_EQ_STR(render(CHAT_TMPL_MISTRAL, conv, 4, 1, &b),
                 "[INST] Be brief.\n\nWhat is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]");

    CHECK_EQ_STR(render(CHAT_TMPL_LLAMA2, one, 1, 1, &b), "[INST] hi [/INST]");
    CHECK_EQ_STR(render(CHAT_TMPL_LLAMA2, conv, 4, 1, &b),
                 "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4 </s>"
                 "<s>[INST] And 3+3? [/INST]");
    chat_msg_t ws[] = {{"user", "  padded \n"}, {"assistant", " ok "}};
    CHECK_EQ_STR(render(CHAT_TMPL_LLAMA2, ws, 2, 0, &b), "[INST] padded [/INST] ok </s>");
    CHECK_EQ_STR(render(CHAT_TMPL_MISTRAL, ws, 2, 0, &b), "[INST]   padded \n [/INST] ok </s>");

    CHECK_EQ_STR(render(CHAT_TMPL_PHI3, one, 1, 1, &b), "<|user|>\nhi<|end|>\n<|assistant|>\n");
    CHECK_EQ_STR(render(CHAT_TMPL_PHI3, one, 1, 0, &b), "<|user|>\nhi<|end|>\n");
    CHECK_EQ_STR(render(CHAT_TMPL_PHI3, conv, 4, 1, &b),
                 "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4"
                 "<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n");

    CHECK_EQ_STR(render(CHAT_TMPL_CHATML, conv, 2, 1, &b),
                 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?"
                 "<|im_end|>\n<|im_start|>assistant\n");

    chat_msg_t bad[] = {{"tool", "x"}};
    buf_reset(&b);
    CHECK_EQ_INT(chat_apply(CHAT_TMPL_PHI3, bad, 1, 1, &b), -EINVAL);
    CHECK_EQ_INT(chat_apply(CHAT_TMPL_UNKNOWN, one, 1, 1, &b), -EINVAL);
    buf_free(&b);
}

/* The rendered Phi-3 prompt tokenizes to the reference's ids for the same text. */
static void test_with_ref_model(void) {
    const char *r = getenv("TOLLGATE_REF");
    char path[1200], err[256];
    snprintf(path, sizeof path, "%s/models/phi3-tiny-Q8_0.gguf", r && *r ? r : "../shared/ref");
    gguf_file_t f;
    if (gguf_open(path, &f, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    CHECK_EQ_INT(chat_template_for_gguf(&f), CHAT_TMPL_PHI3);
    tokenizer_t *t;
    CHECK_EQ_INT(tok_load(&f, &t, err, sizeof err), 0);
    buf_t b;
    buf_init(&b);
    chat_msg_t one[] = {{"user", "hi"}};
    render(CHAT_TMPL_PHI3, one, 1, 1, &b);
    int32_t ids[16];
    int n = tok_encode(t, b.data, b.len, 1, 1, ids, 16);
    int32_t want[] = {1, 32010, 7251, 32007, 32001};
    CHECK_EQ_INT(n, 5);
    CHECK(n == 5 && !memcmp(ids, want, sizeof want));
    buf_free(&b);
    tok_free(t);
    gguf_close(&f);

    snprintf(path, sizeof path, "%s/models/llama-tiny-Q8_0.gguf", r && *r ? r : "../shared/ref");
    if (gguf_open(path, &f, err, sizeof err) == 0) {
        CHECK_EQ_INT(chat_template_for_gguf(&f), CHAT_TMPL_MISTRAL); /* no template: arch */
        gguf_close(&f);
    }
}

int main(void) {
    test_detect();
    test_render();
    test_with_ref_model();
    return check_summary("test_chat");
}
