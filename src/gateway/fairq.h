/* fairq.h — a bounded weighted fair queue of waiting requests: start-time fair queuing over
 * per-service FIFOs, so that a burst from one service delays the others by at most its
 * share, with a deadline per waiting request. Intrusive (items live in the caller's request
 * structs: no allocation per request); one per worker thread, never shared. */
#ifndef TOLLGATE_GATEWAY_FAIRQ_H
#define TOLLGATE_GATEWAY_FAIRQ_H

#include <stddef.h>
#include <stdint.h>

/* One waiting request, embedded in the caller's struct. */
typedef struct fairq_item {
    uint64_t tag;         /* virtual start time: the order of service */
    uint64_t deadline_ns; /* monotonic: past it the request leaves with 503 */
    int flow;             /* service index */
    struct fairq_item *next;
} fairq_item_t;

typedef struct fairq_flow {
    fairq_item_t *head, *tail;
    uint64_t last_finish; /* virtual finish time of this flow's last enqueued item */
    uint32_t weight;      /* share, >= 1 */
    uint32_t len;
} fairq_flow_t;

typedef struct fairq {
    fairq_flow_t *flows; /* nflows, owned */
    size_t nflows;
    uint64_t vtime;  /* virtual time: start tag of the item last served */
    size_t len, cap; /* waiting now, most that may wait */
} fairq_t;

/* Virtual-time units one request of weight 1 advances its flow: a request of a flow with
 * weight w advances it by FAIRQ_UNIT / w, so weights up to FAIRQ_UNIT stay exact enough. */
#define FAIRQ_UNIT 1000000ull

/* nflows flows (services; weights[i] >= 1, NULL = all 1), at most cap waiting. 0 or -ENOMEM. */
int fairq_init(fairq_t *q, size_t nflows, const uint32_t *weights, size_t cap);
void fairq_free(fairq_t *q);

/* Enqueue it for flow (0 <= flow < nflows) until deadline_ns. 0, or -ENOSPC when the
 * queue is full (answer 429 at once), -EINVAL for a bad flow. */
int fairq_push(fairq_t *q, fairq_item_t *it, int flow, uint64_t deadline_ns);
/* The next item to serve (smallest start tag; ties to the lower flow index), removed; NULL
 * when empty. */
fairq_item_t *fairq_pop(fairq_t *q);
/* Remove an item that is waiting (its client went away). 0, or -ENOENT. */
int fairq_remove(fairq_t *q, fairq_item_t *it);
/* Remove and return one item whose deadline is <= now (NULL when none). Call until NULL.
 * Only heads are looked at: within a flow deadlines are in order when every item waits
 * the same time, which is how the gateway uses it. */
fairq_item_t *fairq_expired(fairq_t *q, uint64_t now_ns);
/* The earliest deadline among the heads, UINT64_MAX when empty (to arm one timer). */
uint64_t fairq_next_deadline(const fairq_t *q);

/* A gate in front of a backend pool: at most max_in_flight requests pass at once, the rest
 * wait in the fair queue. Single-threaded like the queue (one per worker and backend). */
typedef struct fairq_gate {
    fairq_t q;
    uint32_t max_in_flight;
    uint32_t in_flight;
    uint32_t timeout_ms; /* how long a request may wait */
} fairq_gate_t;

int fairq_gate_init(fairq_gate_t *g, size_t nflows, const uint32_t *weights, uint32_t max_in_flight,
                    size_t max_waiting, uint32_t timeout_ms);
void fairq_gate_free(fairq_gate_t *g);
/* A request wants in: 1 = go now (a slot is taken), 0 = queued (it will come out of
 * fairq_gate_leave or fairq_expired), -ENOSPC = queue full (answer at once). */
int fairq_gate_enter(fairq_gate_t *g, fairq_item_t *it, int flow, uint64_t now_ns);
/* A request that held a slot is done. Returns the next waiting item, which now holds the
 * slot (start it), or NULL. */
fairq_item_t *fairq_gate_leave(fairq_gate_t *g);

#endif
