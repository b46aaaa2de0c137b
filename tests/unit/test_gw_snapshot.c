/* test_gw_snapshot.c — config generations: addresses shared across generations through the
 * registry, live weights, route lookup, reference counting; the admin key comparison. */
#include "check.h"

#include "gateway/admin.h"
#include "gateway/snapshot.h"

static const char *gen1 =
    "backends:\n  a:\n    addresses: [127.0.0.1:7001, 127.0.0.1:7002]\n"
    "routes:\n  m:\n    variants:\n      s: {backend: a, weight: 3}\n      c: {backend: a, weight: 1}\n";
static const char *gen2 =
    "backends:\n  b:\n    addresses: [127.0.0.1:7002, 127.0.0.1:7003]\n"
    "routes:\n  \"org/m\":\n    variants:\n      s: {backend: b}\n";

static snapshot_t *build(const char *text, pool_registry_t *reg, uint64_t gen) {
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX];
    if (gwconfig_load_string("t.yaml", text, strlen(text), &c, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    snapshot_t *s = NULL;
    CHECK_EQ_INT(snapshot_new(&c, reg, gen, &s), 0);
    CHECK(c.routes == NULL); /* taken over */
    return s;
}

static void test_generations(void) {
    pool_registry_t reg;
    pool_registry_init(&reg);
    snapshot_t *s1 = build(gen1, &reg, 1);
    CHECK(s1 != NULL);
    if (!s1)
        return;
    snap_route_t *r = snapshot_route(s1, "m", 1);
    CHECK(r != NULL && r->cfg == &s1->cfg.routes[0]);
    CHECK(snapshot_route(s1, "mm", 2) == NULL);
    CHECK(snapshot_route(s1, "m", 0) == NULL);
    CHECK_EQ_INT(atomic_load(&r->weights[0]), 3);
    CHECK_EQ_INT(snapshot_variant(r, "c"), 1);
    CHECK_EQ_INT(snapshot_variant(r, "x"), -1);
    atomic_store(&r->weights[1], 7); /* the admin API's PUT */
    CHECK_EQ_INT(atomic_load(&r->weights[1]), 7);
    CHECK_EQ_INT(s1->backends[0].naddrs, 2);
    pool_addr_t *shared = s1->backends[0].addrs[1];
    pool_begin(shared); /* a request in flight on generation 1 */

    snapshot_t *s2 = build(gen2, &reg, 2);
    CHECK(s2 != NULL);
    if (!s2)
        return;
    /* 127.0.0.1:7002 is the same entry in both: its state survives the reload. */
    CHECK(s2->backends[0].addrs[0] == shared);
    CHECK_EQ_INT(atomic_load(&s2->backends[0].addrs[0]->outstanding), 1);
    CHECK_EQ_INT(reg.count, 3);
    CHECK(snapshot_route(s2, "org/m", 5) != NULL);
    CHECK(snapshot_route(s2, "m", 1) == NULL);

    /* References: the holder of generation 1 keeps it readable after the swap. */
    snapshot_t *held = snapshot_ref(s1);
    snapshot_unref(s1); /* the gateway drops it on reload */
    CHECK_EQ_INT(atomic_load(&held->refs), 1);
    CHECK(snapshot_route(held, "m", 1) != NULL);
    pool_end(shared);
    snapshot_unref(held); /* last one frees (ASan checks) */
    snapshot_unref(s2);
    pool_registry_free(&reg);
}

static void test_admin_key(void) {
    CHECK(admin_key_equal("secret", "secret"));
    CHECK(!admin_key_equal("secre", "secret"));
    CHECK(!admin_key_equal("secretx", "secret"));
    CHECK(!admin_key_equal("", "secret"));
    CHECK(!admin_key_equal("Secret", "secret"));
    CHECK(admin_key_equal("", ""));
}

int main(void) {
    test_generations();
    test_admin_key();
    return check_summary("test_gw_snapshot");
}
