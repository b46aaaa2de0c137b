/* chat.h — chat templates (Llama-2, Mistral, Phi-3, ChatML): detect from a model file, render
 * messages to a prompt. */
#ifndef TOLLGATE_MODEL_CHAT_H
#define TOLLGATE_MODEL_CHAT_H

#include <stddef.h>

#include "core/buf.h"
#include "model/gguf.h"

typedef enum chat_tmpl {
    CHAT_TMPL_UNKNOWN = 0,
    CHAT_TMPL_LLAMA2,  /* [INST] <<SYS>>..<</SYS>> user [/INST] answer </s><s>[INST] ... */
    CHAT_TMPL_MISTRAL, /* [INST] user [/INST]answer</s>[INST] ... (system folded into user) */
    CHAT_TMPL_PHI3,    /* <|user|>\nuser<|end|>\n<|assistant|>\n */
    CHAT_TMPL_CHATML,  /* <|im_start|>user\nuser<|im_end|>\n<|im_start|>assistant\n */
} chat_tmpl_t;

typedef struct chat_msg {
    const char *role;    /* "system", "user" or "assistant" (NUL-terminated) */
    const char *content; /* NUL-terminated */
} chat_msg_t;

/* Template family of a Jinja chat template string, by distinctive substrings;
 * CHAT_TMPL_UNKNOWN when NULL or not recognised. */
chat_tmpl_t chat_template_detect(const char *tmpl, size_t len);
/* The template of a model file: its tokenizer.chat_template, else by architecture
 * (phi3 -> PHI3, llama -> MISTRAL), else CHAT_TMPL_UNKNOWN. */
chat_tmpl_t chat_template_for_gguf(const gguf_file_t *f);
/* By name: "llama2", "mistral", "phi3", "chatml" (also "llama-2", "phi-3");
 * CHAT_TMPL_UNKNOWN otherwise. */
chat_tmpl_t chat_template_by_name(const char *name);
const char *chat_template_name(chat_tmpl_t id); /* "unknown" for CHAT_TMPL_UNKNOWN */

/* Append the prompt for msgs[0..n) to out. The leading BOS is NOT written: tokenize the
 * result with add_special = 1 (adds BOS) and parse_special = 1 (turn markers such as
 * <|end|> and inner <s>/</s> become their token ids). add_generation_prompt appends the
 * assistant header where the family has one (Phi-3, ChatML; [INST] prompts already end
 * ready for the answer). 0, -EINVAL for an unknown template or role, -ENOMEM. */
int chat_apply(chat_tmpl_t id, const chat_msg_t *msgs, size_t n, int add_generation_prompt,
               buf_t *out);

#endif
