/* trainer.h — training the order-normalization model: data from the menu's generator,
 * a learned vocabulary, data-parallel forward/backward threads, AdamW, checkpoints, and
 * the final GGUF. Also the prompt/completion encoding that training and evaluation share. */
#ifndef TOLLGATE_TRAIN_TRAINER_H
#define TOLLGATE_TRAIN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "model/tokenizer.h"
#include "train/orders_data.h"
#include "train/tmodel.h"
#include "train/vocab.h"

/* The chat template written into the model (Mistral's; chat_template_detect knows it),
 * and the family the prompts are rendered with. */
#define TRAIN_CHAT_TEMPLATE                                                                        \
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"               \
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + "          \
    "eos_token }}{% endif %}{% endfor %}"

typedef struct train_opts {
    const char *menu;  /* menu YAML */
    const char *out;   /* final GGUF */
    const char *ckpt;  /* checkpoint path (NULL: out + ".ckpt") */
    int resume;        /* continue from ckpt */
    tm_config_t model; /* vocab is set from the learned vocabulary */
    int vocab_size;    /* pieces to learn */
    int steps, batch, warmup;
    float lr, min_lr, weight_decay, clip;
    uint64_t seed;
    int threads;
    int log_every, ckpt_every;
    int f16;     /* matrices in F16 in the final file */
    int stop_at; /* > 0: checkpoint and return after this step (resume later); the
                  * schedule is still that of `steps` */
} train_opts_t;

void train_opts_default(train_opts_t *o);

/* Train as o says, printing progress to log. 0 or a negative errno (message on log). */
int train_run(const train_opts_t *o, FILE *log);

/* Prompt ids for one order as the engine builds them: the chat template (Mistral) over one
 * user message, BOS added, special tokens parsed. Returns the count (may exceed cap). */
int train_encode_prompt(const tokenizer_t *t, const char *input, int32_t *out, int cap);
/* Completion ids: the normal form with no leading space, then EOS. Count or -errno. */
int train_encode_completion(const tokenizer_t *t, const char *output, int32_t *out, int cap);

#endif
