/* fairq.c — start-time fair queuing (Goyal et al. 1996) over per-service FIFOs. */
#include "gateway/fairq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int fairq_init(fairq_t *q, size_t nflows, const uint32_t *weights, size_t cap) {
    memset(q, 0, sizeof *q);
    q->flows = calloc(nflows ? nflows : 1, sizeof *q->flows);
    if (!q->flows) return -ENOMEM;
    q->nflows = nflows;
    q->cap = cap;
    for (size_t i = 0; i < nflows; i++) q->flows[i].weight = weights && weights[i] ? weights[i] : 1;
    return 0;
}

void fairq_free(fairq_t *q) {
    free(q->flows);
    memset(q, 0, sizeof *q);
}

int fairq_push(fairq_t *q, fairq_item_t *it, int flow, uint64_t deadline_ns) {
    if (flow < 0 || (size_t)flow >= q->nflows) return -EINVAL;
    if (q->len >= q->cap) return -ENOSPC;
    fairq_flow_t *f = &q->flows[flow];
    /* A flow that was idle starts at the current virtual time: idling earns no credit, so
     * a service that comes back cannot then monopolise the pool. */
    it->tag = f->last_finish > q->vtime ? f->last_finish : q->vtime;
    f->last_finish = it->tag + FAIRQ_UNIT / f->weight;
    it->deadline_ns = deadline_ns;
    it->flow = flow;
    it->next = NULL;
    if (f->tail)
        f->tail->next = it;
    else
        f->head = it;
    f->tail = it;
    f->len++;
    q->len++;
    return 0;
}

static void unlink_head(fairq_t *q, fairq_flow_t *f) {
    fairq_item_t *it = f->head;
    f->head = it->next;
    if (!f->head) f->tail = NULL;
    it->next = NULL;
    f->len--;
    q->len--;
}

fairq_item_t *fairq_pop(fairq_t *q) {
    fairq_flow_t *best = NULL;
    for (size_t i = 0; i < q->nflows; i++) {
        fairq_flow_t *f = &q->flows[i];
        if (f->head && (!best || f->head->tag < best->head->tag)) best = f;
    }
    if (!best) return NULL;
    fairq_item_t *it = best->head;
    unlink_head(q, best);
    q->vtime = it->tag;
    return it;
}

int fairq_remove(fairq_t *q, fairq_item_t *it) {
    if (it->flow < 0 || (size_t)it->flow >= q->nflows) return -ENOENT;
    fairq_flow_t *f = &q->flows[it->flow];
    fairq_item_t *prev = NULL;
    for (fairq_item_t *c = f->head; c; prev = c, c = c->next) {
        if (c != it) continue;
        if (prev)
            prev->next = c->next;
        else
            f->head = c->next;
        if (f->tail == c) f->tail = prev;
        c->next = NULL;
        f->len--;
        q->len--;
        return 0;
    }
    return -ENOENT;
}

fairq_item_t *fairq_expired(fairq_t *q, uint64_t now_ns) {
    for (size_t i = 0; i < q->nflows; i++) {
        fairq_flow_t *f = &q->flows[i];
        if (f->head && f->head->deadline_ns <= now_ns) {
            fairq_item_t *it = f->head;
            unlink_head(q, f);
            return it;
        }
    }
    return NULL;
}

uint64_t fairq_next_deadline(const fairq_t *q) {
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < q->nflows; i++)
        if (q->flows[i].head && q->flows[i].head->deadline_ns < d)
            d = q->flows[i].head->deadline_ns;
    return d;
}

int fairq_gate_init(fairq_gate_t *g, size_t nflows, const uint32_t *weights, uint32_t max_in_flight,
                    size_t max_waiting, uint32_t timeout_ms) {
    memset(g, 0, sizeof *g);
    g->max_in_flight = max_in_flight ? max_in_flight : 1;
    g->timeout_ms = timeout_ms;
    return fairq_init(&g->q, nflows, weights, max_waiting);
}

void fairq_gate_free(fairq_gate_t *g) {
    fairq_free(&g->q);
}

int fairq_gate_enter(fairq_gate_t *g, fairq_item_t *it, int flow, uint64_t now_ns) {
    /* Nobody waiting and a slot free: straight through (the common, unloaded case). */
    if (g->in_flight < g->max_in_flight && g->q.len == 0) {
        g->in_flight++;
        return 1;
    }
    int rc = fairq_push(&g->q, it, flow, now_ns + (uint64_t)g->timeout_ms * 1000000);
    return rc < 0 ? rc : 0;
}

fairq_item_t *fairq_gate_leave(fairq_gate_t *g) {
    if (g->in_flight) g->in_flight--;
    if (g->in_flight >= g->max_in_flight) return NULL;
    fairq_item_t *it = fairq_pop(&g->q);
    if (it) g->in_flight++;
    return it;
}
