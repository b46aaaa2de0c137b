/* govern.c — authentication, admission and correction against per-service limits. */
#include "gateway/govern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static const char *const REASONS[GOV_R_COUNT] = {
    "missing_key", "invalid_key",  "model_not_allowed", "prompt_too_long",   "max_tokens_too_large",
    "requests",    "tokens",       "concurrency",       "request_too_large", "daily_budget",
    "queue_full",  "queue_timeout"};

const char *gov_reason_name(int r) {
    return r >= 0 && r < GOV_R_COUNT ? REASONS[r] : "unknown";
}

int gov_init(gov_t *g) {
    memset(g, 0, sizeof *g);
    return -pthread_mutex_init(&g->mu, NULL);
}

void gov_destroy(gov_t *g) {
    gov_state_t *s = g->states;
    while (s) {
        gov_state_t *n = s->next;
        while (s->models) {
            gov_mstate_t *m = s->models;
            s->models = m->next;
            free(m);
        }
        pthread_mutex_destroy(&s->mu);
        free(s);
        s = n;
    }
    g->states = NULL;
    pthread_mutex_destroy(&g->mu);
}

int gov_bind(gov_t *g, gov_cfg_t *cfg, uint64_t now_ns, int64_t unix_s) {
    if (!cfg) return 0;
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    for (size_t i = 0; i < cfg->nservices; i++) {
        gov_service_cfg_t *sc = &cfg->services[i];
        gov_state_t *s = g->states;
        while (s && strcmp(s->name, sc->name)) s = s->next;
        if (!s) {
            if (!(s = calloc(1, sizeof *s))) {
                rc = -ENOMEM;
                break;
            }
            snprintf(s->name, sizeof s->name, "%s", sc->name);
            pthread_mutex_init(&s->mu, NULL);
            rl_state_init(&s->rl, &sc->rl, now_ns);
            budget_init(&s->budget, unix_s);
            s->next = g->states;
            g->states = s;
        }
        pthread_mutex_lock(&s->mu);
        s->daily_limit = sc->daily_tokens;
        for (size_t j = 0; j < sc->nmlimits && rc == 0; j++) {
            gov_model_limit_t *ml = &sc->mlimits[j];
            gov_mstate_t *m = s->models;
            while (m && strcmp(m->model, ml->model)) m = m->next;
            if (!m) {
                if (!(m = calloc(1, sizeof *m))) {
                    rc = -ENOMEM;
                    break;
                }
                snprintf(m->model, sizeof m->model, "%s", ml->model);
                rl_state_init(&m->rl, &ml->rl, now_ns);
                m->next = s->models;
                s->models = m;
            }
            ml->state = m;
        }
        pthread_mutex_unlock(&s->mu);
        sc->state = s;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int refuse(gov_t *g, gov_decision_t *d, int status, int reason, const char *type,
                  const char *code, const char *param) {
    d->status = status;
    d->reason = reason;
    d->type = type;
    d->code = code;
    d->param = param;
    atomic_fetch_add_explicit(&g->rejected[reason], 1, memory_order_relaxed);
    return status;
}

static void decision_init(gov_decision_t *d) {
    memset(d, 0, sizeof *d);
    d->set_max_tokens = -1;
}

int gov_authenticate(gov_t *g, const gov_cfg_t *cfg, const char *authorization, gov_decision_t *d) {
    decision_init(d);
    size_t len = 0;
    const char *key = keys_bearer(authorization, &len);
    if (!key) {
        snprintf(d->message, sizeof d->message,
                 "You didn't provide an API key. You need to provide your API key in an "
                 "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
        refuse(g, d, 401, GOV_R_MISSING_KEY, "invalid_request_error", "missing_api_key", NULL);
        return -1;
    }
    int s = keys_table_lookup(&cfg->keys, key, len);
    if (s < 0) {
        /* Like OpenAI, show only the key's ends, so a log of the error leaks nothing. */
        if (len >= 12)
            snprintf(d->message, sizeof d->message, "Incorrect API key provided: %.4s...%.4s.", key,
                     key + len - 4);
        else
            snprintf(d->message, sizeof d->message, "Incorrect API key provided.");
        refuse(g, d, 401, GOV_R_INVALID_KEY, "invalid_request_error", "invalid_api_key", NULL);
        return -1;
    }
    return s;
}

int gov_check_model(gov_t *g, const gov_cfg_t *cfg, int service, const char *model,
                    gov_decision_t *d) {
    decision_init(d);
    if (service < 0 || govcfg_model_allowed(&cfg->services[service], model)) return 0;
    snprintf(d->message, sizeof d->message, "Service `%s` is not allowed to use model `%.200s`.",
             cfg->services[service].name, model);
    refuse(g, d, 403, GOV_R_MODEL, "invalid_request_error", "model_not_allowed", "model");
    return -1;
}

/* The request's completion cap: which key it used and its value (-1 absent). */
static int64_t max_tokens_of(const json_doc_t *body, const char **key) {
    static const char *const names[] = {"max_completion_tokens", "max_tokens"};
    for (int i = 0; i < 2; i++) {
        int t = json_obj_get(body, 0, names[i]);
        int64_t v;
        if (t >= 0 && json_get_i64(body, t, &v) == 0 && v >= 0) {
            *key = names[i];
            return v;
        }
    }
    *key = "max_tokens";
    return -1;
}

int gov_admit_request(gov_t *g, const gov_cfg_t *cfg, int service, const tokcount_t *tc,
                      tokcount_work_t *w, const json_doc_t *body, int is_chat, gov_ticket_t *t,
                      gov_decision_t *d) {
    decision_init(d);
    memset(t, 0, sizeof *t);
    t->prompt = -1;
    int exact = 0;
    int64_t prompt = tokcount_request(tc, w, body, is_chat, &exact);
    if (prompt >= 0) {
        t->prompt = prompt;
        t->exact = exact;
        atomic_fetch_add_explicit(exact ? &g->exact : &g->estimated, 1, memory_order_relaxed);
    } else {
        prompt = 0; /* not countable here: the upstream will judge the body */
    }
    if (service < 0 || !cfg || (size_t)service >= cfg->nservices) return 0;
    const gov_service_cfg_t *sc = &cfg->services[service];
    t->svc = sc;
    const char *param = is_chat ? "messages" : "prompt";

    if (sc->max_prompt_tokens && (uint64_t)prompt > sc->max_prompt_tokens) {
        snprintf(d->message, sizeof d->message,
                 "This request's prompt is %lld tokens%s, over the limit of %llu prompt tokens "
                 "for service `%s`. Please shorten the %s.",
                 (long long)prompt, exact ? "" : " (estimated)",
                 (unsigned long long)sc->max_prompt_tokens, sc->name, param);
        return refuse(g, d, 400, GOV_R_PROMPT, "invalid_request_error", "prompt_too_long", param);
    }
    const char *mkey;
    int64_t mt = max_tokens_of(body, &mkey);
    uint64_t allowance;
    if (mt < 0) {
        allowance = sc->max_completion ? sc->max_completion : GOV_DEF_ALLOWANCE;
        if (sc->max_completion) {
            d->set_max_tokens = (int64_t)sc->max_completion;
            d->max_tokens_key = mkey;
        }
    } else if (sc->max_completion && (uint64_t)mt > sc->max_completion) {
        if (sc->over_completion == GOV_REJECT) {
            snprintf(d->message, sizeof d->message,
                     "%s is %lld, over the limit of %llu completion tokens for service `%s`.", mkey,
                     (long long)mt, (unsigned long long)sc->max_completion, sc->name);
            return refuse(g, d, 400, GOV_R_COMPLETION, "invalid_request_error",
                          "max_tokens_too_large", mkey);
        }
        allowance = sc->max_completion;
        d->set_max_tokens = (int64_t)sc->max_completion;
        d->max_tokens_key = mkey;
    } else {
        allowance = (uint64_t)mt;
    }
    t->allowance = allowance;
    t->cost = (uint64_t)prompt + allowance;
    return 0;
}

int gov_refusal(gov_t *g, const gov_service_cfg_t *sc, const gov_ticket_t *t, int verdict,
                uint64_t budget_used_now, int64_t unix_s, gov_decision_t *d) {
    uint64_t cost = t->cost, allowance = t->allowance;
    long long prompt = t->prompt > 0 ? t->prompt : 0;
    if (verdict == GOV_V_BUDGET) {
        uint64_t left = budget_until_midnight_s(unix_s);
        d->retry_after_s = left;
        snprintf(d->message, sizeof d->message,
                 "Service `%s` has used %llu of its daily budget of %llu tokens; this request "
                 "needs up to %llu (prompt %lld + max_tokens %llu). The budget resets at 00:00 "
                 "UTC, in %lluh%02llum.",
                 sc->name, (unsigned long long)budget_used_now,
                 (unsigned long long)sc->daily_tokens, (unsigned long long)cost, prompt,
                 (unsigned long long)allowance, (unsigned long long)(left / 3600),
                 (unsigned long long)(left / 60 % 60));
        return refuse(g, d, 429, GOV_R_BUDGET, "insufficient_quota", "daily_budget_exceeded", NULL);
    }
    char wait[32];
    rl_fmt_duration(d->rl.retry_ns, wait);
    d->retry_after_s = rl_retry_after_s(d->rl.retry_ns);
    switch (verdict) {
    case RL_TOO_LARGE:
        snprintf(d->message, sizeof d->message,
                 "This request needs up to %llu tokens (prompt %lld + max_tokens %llu), more than "
                 "service `%s` may use at once (tokens per minute burst %llu). Reduce max_tokens "
                 "or the prompt.",
                 (unsigned long long)cost, prompt, (unsigned long long)allowance, sc->name,
                 (unsigned long long)(sc->rl.tpm_burst ? sc->rl.tpm_burst : sc->rl.tpm));
        d->retry_after_s = 0;
        return refuse(g, d, 400, GOV_R_TOO_LARGE, "invalid_request_error", "request_too_large",
                      NULL);
    case RL_CONCURRENCY:
        snprintf(d->message, sizeof d->message,
                 "Service `%s` already has %u requests in flight, its limit of concurrent "
                 "requests. Please retry when one has finished.",
                 sc->name, sc->rl.concurrency);
        return refuse(g, d, 429, GOV_R_CONCURRENCY, "requests", "rate_limit_exceeded", NULL);
    case RL_REQUESTS:
        snprintf(d->message, sizeof d->message,
                 "Rate limit reached for service `%s` on requests per min (RPM): Limit %llu, "
                 "Remaining %llu, Requested 1. Please try again in %s.",
                 sc->name, (unsigned long long)sc->rl.rpm,
                 (unsigned long long)d->rl.remaining_requests, wait);
        return refuse(g, d, 429, GOV_R_REQUESTS, "requests", "rate_limit_exceeded", NULL);
    default:
        snprintf(d->message, sizeof d->message,
                 "Rate limit reached for service `%s` on tokens per min (TPM): Limit %llu, "
                 "Remaining %llu, Requested %llu (prompt %lld + max_tokens %llu). Please try "
                 "again in %s.",
                 sc->name, (unsigned long long)sc->rl.tpm,
                 (unsigned long long)d->rl.remaining_tokens, (unsigned long long)cost, prompt,
                 (unsigned long long)allowance, wait);
        return refuse(g, d, 429, GOV_R_TOKENS, "tokens", "rate_limit_exceeded", NULL);
    }
}

void gov_ticket_model(gov_ticket_t *t, const char *model) {
    t->ml = NULL;
    for (size_t i = 0; t->svc && i < t->svc->nmlimits; i++)
        if (!strcmp(t->svc->mlimits[i].model, model)) t->ml = &t->svc->mlimits[i];
}

/* A refusal by the service's limits on one model. */
static int model_refusal(gov_t *g, const gov_ticket_t *t, int v, gov_decision_t *d) {
    const gov_service_cfg_t *sc = t->svc;
    const gov_model_limit_t *ml = t->ml;
    char wait[32];
    rl_fmt_duration(d->rl.retry_ns, wait);
    d->retry_after_s = rl_retry_after_s(d->rl.retry_ns);
    if (v == RL_TOO_LARGE) {
        snprintf(d->message, sizeof d->message,
                 "This request needs up to %llu tokens, more than service `%s` may use at once on "
                 "model `%s` (tokens per minute burst %llu).",
                 (unsigned long long)t->cost, sc->name, ml->model,
                 (unsigned long long)(ml->rl.tpm_burst ? ml->rl.tpm_burst : ml->rl.tpm));
        d->retry_after_s = 0;
        return refuse(g, d, 400, GOV_R_TOO_LARGE, "invalid_request_error", "request_too_large", NULL);
    }
    if (v == RL_CONCURRENCY) {
        snprintf(d->message, sizeof d->message,
                 "Service `%s` already has %u requests in flight on model `%s`, its limit there. "
                 "Please retry when one has finished.",
                 sc->name, ml->rl.concurrency, ml->model);
        return refuse(g, d, 429, GOV_R_CONCURRENCY, "requests", "rate_limit_exceeded", NULL);
    }
    int req = v == RL_REQUESTS;
    snprintf(d->message, sizeof d->message,
             "Rate limit reached for service `%s` on model `%s` on %s per min (%s): Limit %llu, "
             "Remaining %llu. Please try again in %s.",
             sc->name, ml->model, req ? "requests" : "tokens", req ? "RPM" : "TPM",
             (unsigned long long)(req ? ml->rl.rpm : ml->rl.tpm),
             (unsigned long long)(req ? d->rl.remaining_requests : d->rl.remaining_tokens), wait);
    return refuse(g, d, 429, req ? GOV_R_REQUESTS : GOV_R_TOKENS, req ? "requests" : "tokens",
                  "rate_limit_exceeded", NULL);
}

/* Charge the model-level limits; the service's lock is held. RL_OK or the verdict, d->rl
 * then holding the model bucket's numbers. */
static int admit_model_locked(gov_ticket_t *t, uint64_t now_ns, gov_decision_t *d) {
    rl_result_t r;
    int v = rl_admit(&((gov_mstate_t *)t->ml->state)->rl, &t->ml->rl, t->cost, now_ns, &r);
    if (v == RL_OK)
        t->ml_charged = 1;
    else
        d->rl = r;
    return v;
}

int gov_admit_model(gov_t *g, gov_ticket_t *t, uint64_t now_ns, gov_decision_t *d) {
    if (!t->ml || !t->ml->state) return 0;
    gov_state_t *st = t->svc->state;
    pthread_mutex_lock(&st->mu);
    int v = admit_model_locked(t, now_ns, d);
    pthread_mutex_unlock(&st->mu);
    return v == RL_OK ? 0 : model_refusal(g, t, v, d);
}

int gov_admit_local(gov_t *g, gov_ticket_t *t, uint64_t now_ns, int64_t unix_s, gov_decision_t *d) {
    const gov_service_cfg_t *sc = t->svc;
    if (!sc) return 0;
    gov_state_t *st = sc->state;
    uint64_t cost = t->cost;
    /* Budget and rate limits together under the service's lock: all or nothing. */
    pthread_mutex_lock(&st->mu);
    if (!budget_take(&st->budget, sc->daily_tokens, cost, unix_s)) {
        uint64_t used = budget_used(&st->budget, unix_s);
        pthread_mutex_unlock(&st->mu);
        return gov_refusal(g, sc, t, GOV_V_BUDGET, used, unix_s, d);
    }
    int v = rl_admit(&st->rl, &sc->rl, cost, now_ns, &d->rl);
    int mv = RL_OK;
    if (v == RL_OK && t->ml && t->ml->state && (mv = admit_model_locked(t, now_ns, d)) != RL_OK) {
        /* The model's limit says no: take back what the service was charged. */
        uint64_t rb = sc->rl.rpm_burst ? sc->rl.rpm_burst : sc->rl.rpm;
        if (sc->rl.rpm) rl_bucket_adjust(&st->rl.req, rb, -1);
        rl_finish(&st->rl, &sc->rl, cost, 0, now_ns);
        v = -1;
    }
    if (v != RL_OK) budget_adjust(&st->budget, budget_day(unix_s), -(int64_t)cost, unix_s);
    pthread_mutex_unlock(&st->mu);
    d->rl_headers = sc->rl.rpm || sc->rl.tpm;
    if (mv != RL_OK) return model_refusal(g, t, mv, d);
    if (v == RL_OK) {
        t->st = st;
        t->charged = cost;
        t->day = budget_day(unix_s);
        return 0;
    }
    return gov_refusal(g, sc, t, v, 0, unix_s, d);
}

int gov_admit(gov_t *g, const gov_cfg_t *cfg, int service, const tokcount_t *tc, tokcount_work_t *w,
              const json_doc_t *body, int is_chat, uint64_t now_ns, int64_t unix_s, gov_ticket_t *t,
              gov_decision_t *d) {
    int rc = gov_admit_request(g, cfg, service, tc, w, body, is_chat, t, d);
    if (rc) return rc;
    int64_t keep = d->set_max_tokens;
    const char *key = d->max_tokens_key;
    rc = gov_admit_local(g, t, now_ns, unix_s, d);
    d->set_max_tokens = keep;
    d->max_tokens_key = key;
    return rc;
}

uint64_t gov_actual(const gov_ticket_t *t, int64_t prompt, int64_t completion, int status) {
    if (prompt < 0 && completion < 0) return status >= 200 && status < 300 ? t->charged : 0;
    return (uint64_t)(prompt >= 0     ? prompt
                      : t->prompt > 0 ? t->prompt
                                      : 0) +
           (uint64_t)(completion > 0 ? completion : 0);
}

void gov_finish(gov_t *g, gov_ticket_t *t, int64_t prompt, int64_t completion, int status,
                uint64_t now_ns, int64_t unix_s) {
    (void)g;
    uint64_t actual = gov_actual(t, prompt, completion, status);
    if (t->ml_charged) {
        gov_state_t *ms = t->svc->state;
        pthread_mutex_lock(&ms->mu);
        rl_finish(&((gov_mstate_t *)t->ml->state)->rl, &t->ml->rl, t->charged ? t->charged : t->cost,
                  actual, now_ns);
        pthread_mutex_unlock(&ms->mu);
        t->ml_charged = 0;
    }
    if (!t->st) return;
    gov_state_t *st = t->st;
    pthread_mutex_lock(&st->mu);
    rl_finish(&st->rl, &t->svc->rl, t->charged, actual, now_ns);
    budget_adjust(&st->budget, t->day, (int64_t)actual - (int64_t)t->charged, unix_s);
    pthread_mutex_unlock(&st->mu);
    t->st = NULL;
}

void gov_headers(const gov_decision_t *d, const gov_service_cfg_t *svc, gov_header_fn add,
                 void *arg) {
    char v[32];
    if (d->status == 429 && d->retry_after_s) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)d->retry_after_s);
        add(arg, "Retry-After", v);
    }
    if (!d->rl_headers || !svc) return;
    if (svc->rl.rpm) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)svc->rl.rpm);
        add(arg, "x-ratelimit-limit-requests", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)d->rl.remaining_requests);
        add(arg, "x-ratelimit-remaining-requests", v);
        rl_fmt_duration(d->rl.reset_requests_ns, v);
        add(arg, "x-ratelimit-reset-requests", v);
    }
    if (svc->rl.tpm) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)svc->rl.tpm);
        add(arg, "x-ratelimit-limit-tokens", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)d->rl.remaining_tokens);
        add(arg, "x-ratelimit-remaining-tokens", v);
        rl_fmt_duration(d->rl.reset_tokens_ns, v);
        add(arg, "x-ratelimit-reset-tokens", v);
    }
}

int gov_rewrite_max_tokens(const json_doc_t *d, const char *key, int64_t n, buf_t *out) {
    if (d->ntoks == 0 || d->toks[0].type != JSON_OBJECT) return -EINVAL;
    const json_tok_t *t = d->toks;
    int rc = buf_append(out, "{", 1), first = 1;
    uint32_t i = 1;
    for (uint32_t k = 0; k < t[0].size; k++) {
        uint32_t kt = i, vt = i + 1;
        i = t[vt].next;
        if (json_str_eq(d, (int)kt, "max_tokens") ||
            json_str_eq(d, (int)kt, "max_completion_tokens"))
            continue;
        if (!first) rc |= buf_append(out, ",", 1);
        first = 0;
        rc |= json_append_src(out, d, (int)kt);
        rc |= buf_append(out, ":", 1);
        rc |= json_append_src(out, d, (int)vt);
    }
    rc |= buf_appendf(out, "%s\"%s\":%lld}", first ? "" : ",", key, (long long)n);
    return rc ? -ENOMEM : 0;
}

int gov_render_metrics(gov_t *g, int64_t unix_s, buf_t *out) {
    int rc = buf_appends(
        out, "# HELP tollgate_rejected_total Requests refused by governance, by reason.\n"
             "# TYPE tollgate_rejected_total counter\n");
    for (int r = 0; r < GOV_R_COUNT; r++)
        rc |= buf_appendf(
            out, "tollgate_rejected_total{reason=\"%s\"} %llu\n", REASONS[r],
            (unsigned long long)atomic_load_explicit(&g->rejected[r], memory_order_relaxed));
    rc |= buf_appends(
        out,
        "# HELP tollgate_budget_used_ratio Share of the service's daily token budget used today.\n"
        "# TYPE tollgate_budget_used_ratio gauge\n");
    pthread_mutex_lock(&g->mu);
    for (gov_state_t *s = g->states; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        double ratio = budget_ratio(&s->budget, s->daily_limit, unix_s);
        pthread_mutex_unlock(&s->mu);
        char v[32];
        metrics_fmt_value(ratio, v);
        rc |= buf_appendf(out, "tollgate_budget_used_ratio{service=\"%s\"} %s\n", s->name, v);
    }
    pthread_mutex_unlock(&g->mu);
    rc |= buf_appendf(
        out,
        "# HELP tollgate_prompt_counts_total Prompts counted before forwarding, by method.\n"
        "# TYPE tollgate_prompt_counts_total counter\n"
        "tollgate_prompt_counts_total{method=\"exact\"} %llu\n"
        "tollgate_prompt_counts_total{method=\"estimate\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&g->exact, memory_order_relaxed),
        (unsigned long long)atomic_load_explicit(&g->estimated, memory_order_relaxed));
    rc |= buf_appendf(
        out,
        "# HELP tollgate_limits_local_fallbacks_total Admissions decided on local limits because "
        "Redis was unreachable.\n"
        "# TYPE tollgate_limits_local_fallbacks_total counter\n"
        "tollgate_limits_local_fallbacks_total %llu\n"
        "# HELP tollgate_redis_transitions_total Redis connections of the workers going up or "
        "down.\n"
        "# TYPE tollgate_redis_transitions_total counter\n"
        "tollgate_redis_transitions_total{to=\"up\"} %llu\n"
        "tollgate_redis_transitions_total{to=\"down\"} %llu\n"
        "# HELP tollgate_limits_lost_corrections_total End-of-request corrections that could not "
        "reach Redis.\n"
        "# TYPE tollgate_limits_lost_corrections_total counter\n"
        "tollgate_limits_lost_corrections_total %llu\n",
        (unsigned long long)atomic_load_explicit(&g->redis_fallbacks, memory_order_relaxed),
        (unsigned long long)atomic_load_explicit(&g->redis_ups, memory_order_relaxed),
        (unsigned long long)atomic_load_explicit(&g->redis_downs, memory_order_relaxed),
        (unsigned long long)atomic_load_explicit(&g->redis_lost_corrections, memory_order_relaxed));
    return rc ? -ENOMEM : 0;
}

void gov_write_state(gov_t *g, const gov_cfg_t *cfg, uint64_t now_ns, int64_t unix_s, json_w_t *w) {
    json_w_obj_begin(w);
    json_w_key(w, "services");
    json_w_obj_begin(w);
    for (size_t i = 0; cfg && i < cfg->nservices; i++) {
        const gov_service_cfg_t *sc = &cfg->services[i];
        gov_state_t *st = sc->state;
        if (!st) continue;
        pthread_mutex_lock(&st->mu);
        /* A peek: refill a copy so that reading the state does not change it. */
        rl_state_t rl = st->rl;
        uint64_t rb = sc->rl.rpm_burst ? sc->rl.rpm_burst : sc->rl.rpm;
        uint64_t tb = sc->rl.tpm_burst ? sc->rl.tpm_burst : sc->rl.tpm;
        uint64_t used = budget_used(&st->budget, unix_s);
        pthread_mutex_unlock(&st->mu);
        if (sc->rl.rpm) rl_bucket_refill(&rl.req, sc->rl.rpm, rb, now_ns);
        if (sc->rl.tpm) rl_bucket_refill(&rl.tok, sc->rl.tpm, tb, now_ns);
        json_w_key(w, sc->name);
        json_w_obj_begin(w);
        json_w_key(w, "requests_per_minute");
        json_w_i64(w, (int64_t)sc->rl.rpm);
        json_w_key(w, "remaining_requests");
        if (sc->rl.rpm)
            json_w_i64(w, (int64_t)rl_bucket_remaining(&rl.req));
        else
            json_w_null(w);
        json_w_key(w, "tokens_per_minute");
        json_w_i64(w, (int64_t)sc->rl.tpm);
        json_w_key(w, "remaining_tokens");
        if (sc->rl.tpm)
            json_w_i64(w, (int64_t)rl_bucket_remaining(&rl.tok));
        else
            json_w_null(w);
        json_w_key(w, "concurrent_requests");
        json_w_i64(w, sc->rl.concurrency);
        json_w_key(w, "in_flight");
        json_w_i64(w, rl.inflight);
        json_w_key(w, "daily_tokens");
        json_w_i64(w, (int64_t)sc->daily_tokens);
        json_w_key(w, "used_today");
        json_w_i64(w, (int64_t)used);
        json_w_key(w, "budget_used_ratio");
        json_w_double(w, sc->daily_tokens ? (double)used / (double)sc->daily_tokens : 0.0);
        json_w_obj_end(w);
    }
    json_w_obj_end(w);
    json_w_key(w, "shared");
    json_w_bool(w, cfg && cfg->redis_host);
    json_w_key(w, "redis_local_fallbacks");
    json_w_i64(w, (int64_t)atomic_load_explicit(&g->redis_fallbacks, memory_order_relaxed));
    json_w_key(w, "rejected");
    json_w_obj_begin(w);
    for (int r = 0; r < GOV_R_COUNT; r++) {
        json_w_key(w, REASONS[r]);
        json_w_i64(w, (int64_t)atomic_load_explicit(&g->rejected[r], memory_order_relaxed));
    }
    json_w_obj_end(w);
    json_w_obj_end(w);
}
