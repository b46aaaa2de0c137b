/* profile.c — the step profile's switch and report line (profile.h). */
#include "engine/profile.h"

eng_profile_t *eng_profile;

void eng_profile_print(FILE *f, const eng_profile_t *p, const char *step, int threads, double total_s, int steps) {
    static const char *const phase[EP_PHASES] = {"attn_norm", "rope_kv", "attend", "ffn_norm", "silu"};
    double k = 1e3 / steps, phases = 0;
    for (int i = 0; i < EP_PHASES; i++) phases += p->phase_s[i];
    fprintf(f, "perf: breakdown ms_per_%s total=%.3f products=%.3f products_per_%s=%.1f convert=%.3f wait=%.3f", step,
            total_s * k, p->products_s * k, step, (double)p->products / steps, p->convert_s * k, p->wait_s * k);
    for (int i = 0; i < threads && i < EP_THREADS; i++) fprintf(f, " busy%d=%.3f", i, p->busy_s[i] * k);
    fprintf(f, " phases=%.3f", phases * k);
    for (int i = 0; i < EP_PHASES; i++) fprintf(f, " %s=%.3f", phase[i], p->phase_s[i] * k);
    fprintf(f, " other=%.3f products_gbps=%.2f\n", (total_s - p->products_s - phases) * k,
            p->products_s > 0 ? p->bytes / p->products_s / 1e9 : 0);
}
