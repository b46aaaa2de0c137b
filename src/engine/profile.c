/* profile.c — the decode profile's switch and clock (profile.h). */
#include "engine/profile.h"

#include <time.h>

eng_profile_t *eng_profile;

double eng_profile_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
