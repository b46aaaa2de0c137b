/* canaryapi.c — canaries at run time: observations, weights applied to live routes, the
 * admin API's /canary endpoints. */
#include "gateway/canaryapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/json.h"
#include "core/log.h"
#include "gateway/canary.h"
#include "gateway/snapshot.h"
#include "gateway/taskcfg.h"

/* Set the stable/canary weights of c's route in the current generation to what the
 * controller wants (canary w %, stable 100 - w %; other variants untouched). */
static void apply(gateway_t *gw, canary_t *c) {
    char stable[64], variant[64];
    pthread_mutex_lock(&c->mu);
    memcpy(stable, c->stable, sizeof stable);
    memcpy(variant, c->variant, sizeof variant);
    pthread_mutex_unlock(&c->mu);
    int w = canary_weight(c);
    if (w < 0)
        return;
    snapshot_t *s = gateway_acquire(gw);
    snap_route_t *r = snapshot_route(s, c->model, strlen(c->model));
    int si = r ? snapshot_variant(r, stable) : -1, ci = r ? snapshot_variant(r, variant) : -1;
    if (si >= 0 && ci >= 0) {
        /* Canary first: a request racing the change sees more stable, never less of both. */
        atomic_store_explicit(&r->weights[ci], (unsigned)w, memory_order_relaxed);
        atomic_store_explicit(&r->weights[si], (unsigned)(100 - w), memory_order_relaxed);
    }
    snapshot_unref(s);
}

void canaryapi_observe(gateway_t *gw, const char *model, const char *variant,
                       uint32_t latency_ms, int error, int fallback) {
    canary_set_t *set = gateway_canaries(gw);
    if (!canary_count(set))
        return;
    canary_t *c = canary_get(set, model, 0);
    if (!c || !canary_live(c))
        return;
    int before = canary_state(c);
    if (canary_record(c, ev_clock_ns(), variant, latency_ms, error, fallback) != 1)
        return;
    apply(gw, c);
    int after = canary_state(c);
    if (after == CANARY_ABORTED && before != after) {
        pthread_mutex_lock(&c->mu);
        log_warn("canary aborted", LOG_STR("model", c->model), LOG_STR("canary", c->variant),
                 LOG_STR("reason", c->reason));
        pthread_mutex_unlock(&c->mu);
    } else {
        log_info("canary step", LOG_STR("model", model), LOG_INT("weight", canary_weight(c)),
                 LOG_STR("state", canary_state_name(after)));
    }
}

void canaryapi_reapply(gateway_t *gw) {
    canary_set_t *set = gateway_canaries(gw);
    for (size_t i = 0; i < canary_count(set); i++) apply(gw, canary_at(set, i));
}

/* ---------- admin ---------- */

static void respond(httpd_req_t *req, int status, buf_t *b) {
    httpd_respond(req, status, "application/json", b->data, b->len);
}

int canaryapi_parse_start(const char *body, size_t len, canary_cfg_t *g, char *stable,
                          char *variant, char *err, size_t errlen) {
    if (!len)
        return 0;
    cfg_node_t *root;
    int rc = cfg_load_string(body, len, "body", &root, err, errlen);
    if (rc)
        return rc;
    const char *sv = NULL, *cv = NULL;
    if (root->type != CFG_MAP) {
        rc = cfg_err(root, err, errlen, "expected a JSON object");
    } else if (!(rc = taskcfg_canary(root, g, err, errlen)) &&
               !(rc = cfg_str(root, "stable", NULL, &sv, err, errlen)) &&
               !(rc = cfg_str(root, "canary", NULL, &cv, err, errlen))) {
        if (sv)
            snprintf(stable, CANARYAPI_NAME, "%s", sv);
        if (cv)
            snprintf(variant, CANARYAPI_NAME, "%s", cv);
    }
    cfg_free(root);
    return rc;
}

void canaryapi_abort_reason(const char *body, size_t len, char *reason, size_t cap) {
    json_tok_t toks[16];
    json_doc_t d;
    reason[0] = '\0';
    if (!len || json_parse(body, len, toks, 16, 0, &d, NULL) <= 0 || toks[0].type != JSON_OBJECT)
        return;
    int rt = json_obj_get(&d, 0, "reason");
    buf_t rb;
    buf_init(&rb);
    if (rt >= 0 && d.toks[rt].type == JSON_STRING && json_str_unescape(&d, rt, &rb) == 0)
        snprintf(reason, cap, "aborted by the operator: %s", rb.data ? rb.data : "");
    buf_free(&rb);
}

/* The start settings: the route's `canary:` section (or the defaults), then the body's keys
 * ({"stable","canary","steps","pause_ms",...}). */
static int start_cfg(const snapshot_t *s, size_t ri, const char *body, size_t len,
                     canary_cfg_t *g, char *stable, char *variant, char *err, size_t errlen) {
    const taskcfg_route_t *rd = s->cfg.deg && ri < s->cfg.deg->nroutes ? &s->cfg.deg->routes[ri]
                                                                       : NULL;
    const gw_route_cfg_t *rc = &s->cfg.routes[ri];
    if (rd)
        *g = rd->canary;
    else
        canary_cfg_defaults(g);
    stable[0] = variant[0] = '\0';
    if (rd && rd->stable_variant >= 0)
        snprintf(stable, CANARYAPI_NAME, "%s", rc->variants[rd->stable_variant].name);
    if (rd && rd->canary_variant >= 0)
        snprintf(variant, CANARYAPI_NAME, "%s", rc->variants[rd->canary_variant].name);
    int rc2 = canaryapi_parse_start(body, len, g, stable, variant, err, errlen);
    if (rc2)
        return rc2;
    snap_route_t *r = &((snapshot_t *)s)->routes[ri];
    if (!stable[0] || !variant[0] || snapshot_variant(r, stable) < 0 ||
        snapshot_variant(r, variant) < 0 || !strcmp(stable, variant)) {
        snprintf(err, errlen, "name two different variants of the route as \"stable\" and "
                              "\"canary\" (in the body or the route's canary: section)");
        return -EINVAL;
    }
    return 0;
}

int canaryapi_admin(gateway_t *gw, httpd_req_t *req) {
    const char *path = httpd_req_path(req), *method = httpd_req_method(req);
    if (strncmp(path, "/canary", 7) || (path[7] && path[7] != '/'))
        return 0;
    canary_set_t *set = gateway_canaries(gw);
    uint64_t now = ev_clock_ns();
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    buf_t b;
    buf_init(&b);
    json_w_t jw;
    json_w_init(&jw, &b);
    if (!path[7] || !path[8]) { /* GET /canary */
        if (!get) {
            httpd_add_header(req, "Allow", "GET");
            httpd_error(req, 405, "invalid_request_error", "use GET /canary");
        } else {
            json_w_arr_begin(&jw);
            for (size_t i = 0; i < canary_count(set); i++) {
                canary_t *c = canary_at(set, i);
                if (canary_tick(c, now)) /* a step due by time alone */
                    apply(gw, c);
                canary_write_status(c, now, &jw);
            }
            json_w_arr_end(&jw);
            respond(req, 200, &b);
        }
        buf_free(&b);
        return 1;
    }
    /* /canary/MODEL[/ACTION]: the model is everything up to the last known action. */
    char model[CANARY_NAME] = "", action[16] = "";
    const char *m = path + 8, *slash = strrchr(m, '/');
    static const char *const actions[] = {"start", "pause", "resume", "promote", "abort", NULL};
    size_t mlen = strlen(m);
    if (slash) {
        for (size_t i = 0; actions[i]; i++)
            if (!strcmp(slash + 1, actions[i])) {
                snprintf(action, sizeof action, "%s", actions[i]);
                mlen = (size_t)(slash - m);
            }
    }
    if (mlen == 0 || mlen >= sizeof model) {
        httpd_error(req, 404, "invalid_request_error", "unknown canary URL");
        buf_free(&b);
        return 1;
    }
    memcpy(model, m, mlen);
    snapshot_t *s = gateway_acquire(gw);
    snap_route_t *r = snapshot_route(s, model, mlen);
    canary_t *c = canary_get(set, model, 0);
    char err[512];
    int rc = 0;
    if (!r) {
        snprintf(err, sizeof err, "no route `%s`", model);
        httpd_error_ex(req, 404, "invalid_request_error", err, NULL, "model_not_found");
        goto out;
    }
    if (!action[0]) {
        if (!get) {
            httpd_add_header(req, "Allow", "GET");
            httpd_error(req, 405, "invalid_request_error", "use GET, or POST .../ACTION");
            goto out;
        }
        if (c) {
            if (canary_tick(c, now))
                apply(gw, c);
            canary_write_status(c, now, &jw);
        } else {
            buf_appendf(&b, "{\"model\":");
            json_w_str(&jw, model);
            buf_appends(&b, ",\"state\":\"idle\"}");
        }
        respond(req, 200, &b);
        goto out;
    }
    if (!post) {
        httpd_add_header(req, "Allow", "POST");
        httpd_error(req, 405, "invalid_request_error", "use POST");
        goto out;
    }
    size_t blen;
    const char *body = httpd_req_body(req, &blen);
    if (!strcmp(action, "start")) {
        canary_cfg_t g;
        char stable[CANARYAPI_NAME], variant[CANARYAPI_NAME];
        if ((rc = start_cfg(s, (size_t)(r - s->routes), body, blen, &g, stable, variant, err,
                            sizeof err)) == 0) {
            if (!(c = canary_get(set, model, 1)))
                rc = -ENOMEM;
            else if ((rc = canary_start(c, &g, stable, variant, now)) == -EINVAL)
                snprintf(err, sizeof err, "invalid canary settings: steps must rise to 100");
        }
    } else if (!c) {
        rc = -EALREADY;
    } else if (!strcmp(action, "pause")) {
        rc = canary_pause(c, now);
    } else if (!strcmp(action, "resume")) {
        rc = canary_resume(c, now);
    } else if (!strcmp(action, "promote")) {
        rc = canary_promote(c, now);
    } else {
        char reason[160];
        canaryapi_abort_reason(body, blen, reason, sizeof reason);
        rc = canary_abort(c, reason, now);
    }
    if (rc == -EALREADY) {
        snprintf(err, sizeof err, "canary of `%s` is %s: cannot %s", model,
                 canary_state_name(c ? canary_state(c) : CANARY_IDLE), action);
        httpd_error_ex(req, 409, "invalid_request_error", err, NULL, "canary_state");
    } else if (rc) {
        httpd_error_ex(req, rc == -ENOMEM ? 500 : 400, "invalid_request_error",
                       rc == -ENOMEM ? "out of memory" : err, NULL, "canary_invalid");
    } else {
        apply(gw, c);
        log_info("canary command", LOG_STR("model", model), LOG_STR("action", action),
                 LOG_INT("weight", canary_weight(c)));
        canary_write_status(c, now, &jw);
        respond(req, 200, &b);
    }
out:
    snapshot_unref(s);
    buf_free(&b);
    return 1;
}
