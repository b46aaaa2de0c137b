/* test_up_config.c — the config `tollgate up` derives: addresses, upstream model, health path and
 * system prompt land where the gateway reads them (loaded back with gwconfig_load), and
 * configs it cannot rewrite are refused with a message. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/up_config.h"
#include "gateway/gwconfig.h"
#include "gateway/taskcfg.h"

static char out_path[] = "/tmp/test_up_config_out_XXXXXX";
static char in_path[] = "/tmp/test_up_config_in_XXXXXX";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static const gw_variant_cfg_t *variant(const gw_config_t *cfg, const char *route,
                                       const char *name) {
    const gw_route_cfg_t *r = gwconfig_route(cfg, route);
    for (size_t i = 0; r && i < r->nvariants; i++)
        if (!strcmp(r->variants[i].name, name)) return &r->variants[i];
    return NULL;
}

static const task_def_t *task(const gw_config_t *cfg, const char *name) {
    for (size_t i = 0; cfg->deg && i < cfg->deg->ntasks; i++)
        if (!strcmp(cfg->deg->tasks[i].name, name)) return &cfg->deg->tasks[i];
    return NULL;
}

/* The example config for a general model behind an external IPv6 upstream. */
static void test_example_instruct_upstream(void) {
    up_config_opts_t o = {.sim_stable = "127.0.0.1:19001",
                          .sim_canary = "127.0.0.1:19002",
                          .engine = "[::1]:8000",
                          .upstream_model = "mistral-7b-instruct",
                          .engine_health = "/v1/models",
                          .instruct = 1};
    char err[512] = "";
    CHECK_MSG(up_config_write("examples/tollgate.yaml", out_path, &o, err, sizeof err) == 0, "%s",
              err);
    gw_config_t cfg;
    CHECK_MSG(gwconfig_load(out_path, &cfg, err, sizeof err) == 0, "%s", err);
    const gw_backend_cfg_t *e = gwconfig_backend(&cfg, "engine");
    CHECK(e && e->naddrs == 1);
    if (e && e->naddrs == 1) {
        CHECK_EQ_STR(e->addrs[0].host, "::1");
        CHECK_EQ_INT(e->addrs[0].port, 8000);
        CHECK_EQ_STR(e->health.path, "/v1/models");
    }
    const gw_backend_cfg_t *s1 = gwconfig_backend(&cfg, "sim-stable");
    const gw_backend_cfg_t *s2 = gwconfig_backend(&cfg, "sim-canary");
    CHECK(s1 && s1->addrs[0].port == 19001 && !strcmp(s1->health.path, "/health"));
    CHECK(s2 && s2->addrs[0].port == 19002);
    const gw_variant_cfg_t *v = variant(&cfg, "orders", "stable");
    CHECK(v && v->upstream_model && !strcmp(v->upstream_model, "mistral-7b-instruct"));
    /* the simulators' route keeps its own name */
    v = variant(&cfg, "tollgate-sim", "stable");
    CHECK(v && v->upstream_model == NULL);
    const task_def_t *t = task(&cfg, "normalize_order");
    CHECK(t && t->system);
    if (t && t->system) {
        CHECK_MSG(!strncmp(t->system, "Rewrite the pizza order as receipt lines.", 41), "%s",
                  t->system);
        size_t n = strlen(t->system);
        CHECK_MSG(n > 26 && !strcmp(t->system + n - 26, "Answer with the line only."), "%s",
                  t->system);
        CHECK(!strchr(t->system, '#')); /* the comment markers are gone */
        CHECK_EQ_STR(t->tmpl, "{input}");
    }
    gwconfig_free(&cfg);
}

/* The engine up starts with the trained prompt: only the addresses move. */
static void test_example_trained(void) {
    up_config_opts_t o = {
        .sim_stable = "127.0.0.1:9101", .sim_canary = "127.0.0.1:9102", .engine = "127.0.0.1:9103"};
    char err[512] = "";
    CHECK_MSG(up_config_write("examples/tollgate.yaml", out_path, &o, err, sizeof err) == 0, "%s",
              err);
    gw_config_t cfg;
    CHECK_MSG(gwconfig_load(out_path, &cfg, err, sizeof err) == 0, "%s", err);
    const gw_backend_cfg_t *e = gwconfig_backend(&cfg, "engine");
    CHECK(e && e->addrs[0].port == 9103 && !strcmp(e->health.path, "/health"));
    const gw_variant_cfg_t *v = variant(&cfg, "orders", "stable");
    CHECK(v && v->upstream_model == NULL);
    const task_def_t *t = task(&cfg, "normalize_order");
    CHECK(t && t->system == NULL);
    gwconfig_free(&cfg);
}

/* A variant written as a block mapping; a backend whose name extends the engine's is not it. */
static void test_block_form(void) {
    write_text(in_path, "listen: 127.0.0.1:8080\n"
                        "backends:\n"
                        "  engine:   # the model server\n"
                        "    addresses: [127.0.0.1:9003]\n"
                        "  engine-b:\n"
                        "    addresses: [127.0.0.1:9004]\n"
                        "routes:\n"
                        "  orders:\n"
                        "    variants:\n"
                        "      stable:\n"
                        "        backend: engine\n"
                        "        weight: 90\n"
                        "      other: {backend: engine-b, weight: 10}\n");
    up_config_opts_t o = {.sim_stable = "127.0.0.1:1",
                          .sim_canary = "127.0.0.1:2",
                          .engine = "gpu-box.internal:8000",
                          .upstream_model = "a \"quoted\" name"};
    char err[512] = "";
    CHECK_MSG(up_config_write(in_path, out_path, &o, err, sizeof err) == 0, "%s", err);
    gw_config_t cfg;
    CHECK_MSG(gwconfig_load(out_path, &cfg, err, sizeof err) == 0, "%s", err);
    const gw_backend_cfg_t *e = gwconfig_backend(&cfg, "engine");
    CHECK(e && !strcmp(e->addrs[0].host, "gpu-box.internal") && e->addrs[0].port == 8000);
    const gw_variant_cfg_t *v = variant(&cfg, "orders", "stable");
    CHECK(v && v->upstream_model && !strcmp(v->upstream_model, "a \"quoted\" name"));
    CHECK(v && v->weight == 90);
    v = variant(&cfg, "orders", "other");
    CHECK(v && v->upstream_model == NULL);
    gwconfig_free(&cfg);
}

static void test_refusals(void) {
    char err[512] = "";
    up_config_opts_t o = {
        .sim_stable = "127.0.0.1:1", .sim_canary = "127.0.0.1:2", .engine = "127.0.0.1:3"};
    CHECK(up_config_write("/nonexistent/tollgate.yaml", out_path, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "cannot read") != NULL, "%s", err);

    write_text(in_path, "backends:\n  x:\n    addresses: [127.0.0.1:7000]\nroutes: {}\n");
    CHECK(up_config_write(in_path, out_path, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "127.0.0.1:9003") != NULL, "%s", err);

    /* instruct, but the config has no system prompt to enable */
    write_text(in_path, "backends:\n  engine:\n    addresses: [127.0.0.1:9003]\n"
                        "routes:\n  orders:\n    variants: {s: {backend: engine, weight: 1}}\n"
                        "tasks:\n  t:\n    route: orders\n    template: \"{input}\"\n");
    o.instruct = 1;
    CHECK(up_config_write(in_path, out_path, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "--prompt trained") != NULL, "%s", err);
    o.instruct = 0;

    /* a model name, but no variant on the engine's backend */
    write_text(in_path, "backends:\n  engine:\n    addresses: [127.0.0.1:9003]\n  y:\n"
                        "    addresses: [127.0.0.1:7000]\n"
                        "routes:\n  orders:\n    variants: {s: {backend: y, weight: 1}}\n");
    o.upstream_model = "m";
    CHECK(up_config_write(in_path, out_path, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "no route variant") != NULL, "%s", err);
    o.upstream_model = NULL;

    /* a health path to change, but the engine backend has no health check */
    o.engine_health = "/v1/models";
    CHECK(up_config_write(in_path, out_path, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "health check") != NULL, "%s", err);
}

int main(void) {
    int fd1 = mkstemp(out_path), fd2 = mkstemp(in_path);
    if (fd1 < 0 || fd2 < 0) return 1;
    close(fd1), close(fd2);
    test_example_instruct_upstream();
    test_example_trained();
    test_block_form();
    test_refusals();
    unlink(out_path), unlink(in_path);
    return check_summary("test_up_config");
}
