/* server.h — `tollgate serve`: the OpenAI-compatible inference server (HTTP workers, background model load, engine thread, metrics). */
#ifndef TOLLGATE_ENGINE_SERVER_H
#define TOLLGATE_ENGINE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#define SERVER_DEFAULT_MAX_QUEUE 64
#define SERVER_DEFAULT_CTX_CAP   4096 /* default context: the model's, at most this */
#define SERVER_DEFAULT_MAX_SEQS  8    /* sequences batched together (SCHED_DEFAULT_MAX_SEQS) */

typedef enum server_state {
    SERVER_LOADING = 0, /* listener up, model loading in the background: /health 503 */
    SERVER_READY,
    SERVER_FAILED,      /* the model could not be loaded: server_error() says why */
} server_state_t;

typedef struct server_opts {
    const char *model_path;    /* GGUF file (required) */
    const char *host;          /* NULL: 127.0.0.1 */
    int port;                  /* 0: any free port */
    int http_threads;          /* HTTP worker threads; 0: 2 */
    int threads;               /* compute threads for the forward pass (0: all cores) */
    int ctx;                   /* context length; 0: the model's, capped at SERVER_DEFAULT_CTX_CAP */
    const char *chat_template; /* name (chat_template_by_name) or NULL: from the file */
    const char *model_name;    /* served name; NULL: the file's base name without .gguf */
    int max_queue;             /* waiting requests before 503; 0: SERVER_DEFAULT_MAX_QUEUE */
    int max_seqs;              /* sequences generated together (batch); 0: SCHED_DEFAULT_MAX_SEQS */
    int kv_cache_mib;          /* KV cache memory for all sequences; 0: max_seqs full contexts */
    const char *tokenizer_path; /* GGUF to take the tokenizer from (a model file without one,
                                 * e.g. random benchmark weights); NULL: the model's own */
    size_t max_body;           /* request body limit in bytes; 0: 8 MiB */
    int weights_anon;          /* 1: copy the weights into anonymous memory at load
                                * (gguf_copy_to_memory); 0: read them through the mapping */
} server_opts_t;

typedef struct server server_t;

/* Validate options and bind the listener (nothing runs yet). 0, or a negative errno with
 * a message in err. */
int server_new(const server_opts_t *opts, server_t **out, char *err, size_t errlen);
/* Start the HTTP workers, then load the model on a background thread. 0 or negative errno. */
int server_start(server_t *s);
int server_port(const server_t *s);
server_state_t server_state(const server_t *s);
/* Why loading failed ("" otherwise). */
const char *server_error(const server_t *s);
/* Stop: in-flight requests get up to drain_ms to finish, then everything is closed and
 * the engine thread stops. Call once, from the thread that owns the server. */
void server_stop(server_t *s, uint32_t drain_ms);
/* Stop (if needed) and free. NULL is fine. Stopped while the model was still loading,
 * the loader thread is left to the process's exit and keeps the memory it uses. */
void server_free(server_t *s);

#endif
