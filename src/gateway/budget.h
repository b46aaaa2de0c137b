/* budget.h — a service's daily token budget: tokens used in the current UTC day, reserved at
 * admission and corrected at the end, reset at UTC midnight. Pure functions of (state, wall
 * clock); the caller owns the locking. */
#ifndef TOLLGATE_GATEWAY_BUDGET_H
#define TOLLGATE_GATEWAY_BUDGET_H

#include <stdint.h>

#define BUDGET_DAY_S 86400

typedef struct budget {
    int64_t day;   /* UTC day number (unix seconds / 86400) the count belongs to */
    uint64_t used; /* tokens reserved or used in that day */
} budget_t;

/* The UTC day of a unix time, and seconds from it until the next UTC midnight (>= 1). */
int64_t budget_day(int64_t unix_s);
uint64_t budget_until_midnight_s(int64_t unix_s);

void budget_init(budget_t *b, int64_t unix_s);
/* Reserve n tokens against limit (0 = unlimited). 1 = reserved; 0 = refused because
 * used + n would exceed the limit (nothing reserved). A new UTC day starts from zero. */
int budget_take(budget_t *b, uint64_t limit, uint64_t n, int64_t unix_s);
/* Correct a reservation made on day `day` by delta tokens (actual - reserved). A request
 * that began yesterday corrects nothing today: the new day started clean. */
void budget_adjust(budget_t *b, int64_t day, int64_t delta, int64_t unix_s);
/* used / limit for the metric (0 when unlimited), on the current day. */
double budget_ratio(const budget_t *b, uint64_t limit, int64_t unix_s);
/* Tokens used today (0 when the stored day is over). */
uint64_t budget_used(const budget_t *b, int64_t unix_s);

#endif
