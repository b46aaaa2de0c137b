/* test_gw_fairq.c — weighted fair queue: a flooding service gets its share and no more, weights
 * set the shares, an idle service earns no credit, bounds, deadlines, removal. */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "gateway/fairq.h"

#define N 4000

static fairq_item_t items[N];

static void test_flood_vs_trickle(void) {
    fairq_t q;
    CHECK_EQ_INT(fairq_init(&q, 2, NULL, N), 0);
    /* Service 0 floods 1000 requests, then service 1 sends 10. Served one at a time, the
     * 10 must not wait behind the 1000: they alternate with service 0's. */
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= fairq_push(&q, &items[i], 0, UINT64_MAX) == 0;
    CHECK(ok);
    fairq_item_t *first = fairq_pop(&q); /* serving has begun */
    CHECK(first == &items[0]);
    for (int i = 0; i < 10; i++) fairq_push(&q, &items[1000 + i], 1, UINT64_MAX);
    int pos_last = -1, served1 = 0;
    for (int k = 0; k < 1009; k++) {
        fairq_item_t *it = fairq_pop(&q);
        if (it && it->flow == 1) {
            served1++;
            if (served1 == 10) pos_last = k;
        }
    }
    CHECK_EQ_INT(served1, 10);
    /* Within its share: the 10th of service 1 is out by the 20th pop. */
    CHECK_MSG(pos_last >= 0 && pos_last < 21, "last of service 1 at pop %d", pos_last);
    CHECK(fairq_pop(&q) == NULL);
    CHECK_EQ_INT(q.len, 0);
    fairq_free(&q);
}

static void test_weights(void) {
    uint32_t w[3] = {3, 1, 1};
    fairq_t q;
    fairq_init(&q, 3, w, N);
    for (int i = 0; i < 3000; i++) fairq_push(&q, &items[i], i % 3, UINT64_MAX);
    int served[3] = {0};
    for (int k = 0; k < 500; k++) served[fairq_pop(&q)->flow]++;
    /* 3:1:1 of 500 = 300:100:100, within one request. */
    CHECK_MSG(abs(served[0] - 300) <= 1 && abs(served[1] - 100) <= 1 && abs(served[2] - 100) <= 1,
              "%d %d %d", served[0], served[1], served[2]);
    /* FIFO inside a flow. */
    fairq_item_t *prev[3] = {0};
    int fifo = 1;
    fairq_item_t *it;
    while ((it = fairq_pop(&q))) {
        if (prev[it->flow]) fifo &= it > prev[it->flow];
        prev[it->flow] = it;
    }
    CHECK(fifo);
    fairq_free(&q);
}

static void test_idle_earns_nothing(void) {
    fairq_t q;
    fairq_init(&q, 2, NULL, N);
    /* Service 0 alone for a long time... */
    for (int i = 0; i < 500; i++) fairq_push(&q, &items[i], 0, UINT64_MAX);
    for (int i = 0; i < 400; i++) fairq_pop(&q);
    /* ... then service 1 floods: it alternates, it does not get 400 turns in a row. */
    for (int i = 0; i < 500; i++) fairq_push(&q, &items[500 + i], 1, UINT64_MAX);
    int run = 0, maxrun = 0;
    for (int k = 0; k < 200; k++) {
        fairq_item_t *it = fairq_pop(&q);
        run = it->flow == 1 ? run + 1 : 0;
        if (run > maxrun) maxrun = run;
    }
    CHECK_MSG(maxrun <= 2, "service 1 served %d in a row", maxrun);
    fairq_free(&q);
}

static void test_bounds_deadlines_remove(void) {
    fairq_t q;
    fairq_init(&q, 2, NULL, 3);
    CHECK_EQ_INT(fairq_push(&q, &items[0], 0, 100), 0);
    CHECK_EQ_INT(fairq_push(&q, &items[1], 1, 150), 0);
    CHECK_EQ_INT(fairq_push(&q, &items[2], 0, 200), 0);
    CHECK_EQ_INT(fairq_push(&q, &items[3], 1, 250), -ENOSPC); /* full: refused at once */
    CHECK_EQ_INT(fairq_push(&q, &items[3], 2, 250), -EINVAL);
    CHECK_EQ_INT(fairq_next_deadline(&q), 100);
    CHECK(fairq_expired(&q, 99) == NULL);
    CHECK(fairq_expired(&q, 100) == &items[0]);
    CHECK(fairq_expired(&q, 100) == NULL);
    CHECK_EQ_INT(fairq_next_deadline(&q), 150);
    CHECK_EQ_INT(fairq_remove(&q, &items[1]), 0);
    CHECK_EQ_INT(fairq_remove(&q, &items[1]), -ENOENT);
    CHECK_EQ_INT(q.len, 1);
    CHECK(fairq_expired(&q, 1000) == &items[2]);
    CHECK_EQ_INT(fairq_next_deadline(&q), UINT64_MAX);
    CHECK(fairq_pop(&q) == NULL);
    /* Removal from the middle and the tail keeps the list whole. */
    fairq_push(&q, &items[4], 0, 1);
    fairq_push(&q, &items[5], 0, 2);
    fairq_push(&q, &items[6], 0, 3);
    CHECK_EQ_INT(fairq_remove(&q, &items[5]), 0);
    CHECK_EQ_INT(fairq_remove(&q, &items[6]), 0);
    CHECK_EQ_INT(fairq_push(&q, &items[7], 0, 4), 0);
    CHECK(fairq_pop(&q) == &items[4]);
    CHECK(fairq_pop(&q) == &items[7]);
    CHECK(fairq_pop(&q) == NULL);
    fairq_free(&q);
}

static void test_gate(void) {
    fairq_gate_t g;
    CHECK_EQ_INT(fairq_gate_init(&g, 2, NULL, 2, 3, 100), 0);
    CHECK_EQ_INT(fairq_gate_enter(&g, &items[0], 0, 0), 1);
    CHECK_EQ_INT(fairq_gate_enter(&g, &items[1], 0, 0), 1);
    CHECK_EQ_INT(fairq_gate_enter(&g, &items[2], 0, 0), 0); /* both slots busy: waits */
    CHECK_EQ_INT(fairq_gate_enter(&g, &items[3], 0, 0), 0);
    CHECK_EQ_INT(fairq_gate_enter(&g, &items[4], 1, 0), 0);
    CHECK_EQ_INT(fairq_gate_enter(&g, &items[5], 1, 0), -ENOSPC);
    CHECK_EQ_INT(items[2].deadline_ns, 100000000);
    /* A slot frees: the fair choice gets it (flow 1's first before flow 0's second). */
    CHECK(fairq_gate_leave(&g) == &items[2]);
    CHECK(fairq_gate_leave(&g) == &items[4]);
    CHECK_EQ_INT(g.in_flight, 2);
    CHECK(fairq_gate_leave(&g) == &items[3]);
    CHECK(fairq_gate_leave(&g) == NULL);
    CHECK(fairq_gate_leave(&g) == NULL);
    CHECK_EQ_INT(g.in_flight, 0);
    /* Waiting requests keep their turn: a newcomer does not jump a non-empty queue. */
    fairq_gate_enter(&g, &items[0], 0, 0);
    fairq_gate_enter(&g, &items[1], 0, 0);
    fairq_gate_enter(&g, &items[2], 0, 0);
    CHECK(fairq_gate_leave(&g) == &items[2]);
    fairq_gate_free(&g);
}

int main(void) {
    test_gate();
    test_flood_vs_trickle();
    test_weights();
    test_idle_earns_nothing();
    test_bounds_deadlines_remove();
    return check_summary("test_gw_fairq");
}
