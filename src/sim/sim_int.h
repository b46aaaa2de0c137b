/* sim_int.h — the simulator's internals shared by sim.c (endpoints, workers, metrics) and
 * sim_run.c (admission and generation). Not for use outside src/sim/. */
#ifndef TOLLGATE_SIM_SIM_INT_H
#define TOLLGATE_SIM_SIM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/httpd.h"
#include "core/json.h"
#include "core/metrics.h"
#include "sim/sim.h"
#include "sim/sim_gen.h"

#define SIM_MAX_WORKERS 256
#define SIM_JSON_TOKS   65536 /* per worker: the largest request body the simulator reads */
#define SIM_MODEL_LEN   4096  /* max_model_len reported */

typedef struct sim_worker sim_worker_t;

enum { B_NORMAL, B_RESET, B_STALL };

/* One generation in flight. Pooled per worker with its buffers, so a request
 * allocates nothing once the pool is warm. */
typedef struct sim_req {
    sim_worker_t *w;
    httpd_req_t *hr;
    ev_timer_t timer;
    sim_gen_req_t g;
    buf_t echo;            /* echo mode: the text whose words are replayed */
    size_t echo_pos;
    buf_t out;             /* SSE chunks being written / the full JSON body */
    buf_t text;            /* non-streaming: the completion so far */
    sim_knobs_t k;         /* snapshot at arrival */
    uint64_t rng;          /* words */
    uint32_t n_target, n_done, prompt_tokens;
    int finish_length;     /* stopped by max_tokens */
    int behaviour;         /* B_* */
    uint32_t first_ms;     /* delay before the first token */
    int queued, admitted, first_sent;
    uint64_t t_arrive, t_admit, t_last;
    char id[48];
    int64_t created;
    struct sim_req *prev, *next; /* waiting queue, or the free list */
} sim_req_t;

struct sim_worker {
    sim_t *s;
    int idx;
    ev_loop_t *loop;
    json_tok_t *toks;      /* SIM_JSON_TOKS */
    buf_t scratch;         /* bodies of the small endpoints */
    sim_req_t *pool;
    sim_req_t *qhead, *qtail; /* waiting for a slot, FIFO */
    atomic_int nqueued;    /* read by other workers deciding whom to wake */
    ev_timer_t pump;       /* admits waiters from the loop, never inside a callback */
    uint64_t rng;          /* fault rolls, jitter, unseeded words */
    unsigned knobs_gen;
    uint64_t nextid;
};

struct sim {
    pthread_mutex_t lock;  /* guards knobs */
    sim_knobs_t knobs;
    atomic_uint knobs_gen;
    char model[SIM_GEN_MODEL_MAX];
    int64_t started;
    httpd_t *httpd;
    atomic_int running;    /* admitted generations, all workers */
    atomic_int waiting;
    sim_worker_t *_Atomic workers[SIM_MAX_WORKERS]; /* set once by each worker's init */
    metrics_registry_t *reg;
    metrics_child_t *m_ttft, *m_tpot, *m_e2e, *m_queue, *m_ptok_h, *m_gtok_h;
    metrics_child_t *m_ptok, *m_gtok, *m_ok_stop, *m_ok_length, *m_running, *m_waiting, *m_cache;
    metrics_family_t *f_injected;
};

/* sim_run.c, all on the worker's loop thread unless said otherwise. */

/* A copy of the current knobs (any thread). */
void sim_run_knobs(sim_t *s, sim_knobs_t *k);
/* POST /v1/chat/completions (chat 1) or /v1/completions (chat 0): validate, roll faults,
 * admit or queue, and generate on the loop's timers. */
void sim_run_generate(sim_worker_t *w, httpd_req_t *hr, int chat);
/* Let waiting requests in if slots are free (from the loop, soon). */
void sim_run_wakeup(sim_worker_t *w);

#endif
