/* budget.c — daily token budgets with a UTC-midnight reset. */
#include "gateway/budget.h"

int64_t budget_day(int64_t unix_s) {
    /* Floor division, so that times before 1970 (only in tests) still land on a day. */
    return unix_s >= 0 ? unix_s / BUDGET_DAY_S : -((-unix_s + BUDGET_DAY_S - 1) / BUDGET_DAY_S);
}

uint64_t budget_until_midnight_s(int64_t unix_s) {
    return (uint64_t)((budget_day(unix_s) + 1) * BUDGET_DAY_S - unix_s);
}

static void roll(budget_t *b, int64_t unix_s) {
    int64_t d = budget_day(unix_s);
    if (d != b->day) {
        b->day = d;
        b->used = 0;
    }
}

void budget_init(budget_t *b, int64_t unix_s) {
    b->day = budget_day(unix_s);
    b->used = 0;
}

int budget_take(budget_t *b, uint64_t limit, uint64_t n, int64_t unix_s) {
    roll(b, unix_s);
    if (limit && (b->used > limit || n > limit - b->used)) return 0;
    b->used += n;
    return 1;
}

void budget_adjust(budget_t *b, int64_t day, int64_t delta, int64_t unix_s) {
    roll(b, unix_s);
    if (day != b->day) return;
    if (delta < 0 && (uint64_t)-delta > b->used)
        b->used = 0;
    else
        b->used += (uint64_t)delta;
}

uint64_t budget_used(const budget_t *b, int64_t unix_s) {
    return budget_day(unix_s) == b->day ? b->used : 0;
}

double budget_ratio(const budget_t *b, uint64_t limit, int64_t unix_s) {
    return limit ? (double)budget_used(b, unix_s) / (double)limit : 0.0;
}
