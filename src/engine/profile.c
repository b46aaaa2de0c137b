/* profile.c — the decode profile's switch and clock (profile.h). */
#include "engine/profile.h"

#include "core/ev.h"

eng_profile_t *eng_profile;

double eng_profile_now(void) { return (double)ev_clock_ns() * 1e-9; }
