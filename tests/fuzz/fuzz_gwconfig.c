/* fuzz_gwconfig.c — libFuzzer target: the gateway's config loader on arbitrary text; a
 * refusal must explain itself, an acceptance must be a config that validates again. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gwconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX];
    err[0] = '\0';
    int rc = gwconfig_load_string("fuzz.yaml", (const char *)data, size, &c, err, sizeof err);
    if (rc) {
        if (rc == -EINVAL && strncmp(err, "fuzz.yaml", 9))
            abort(); /* every refusal names the file */
        return 0;
    }
    if (gwconfig_validate(&c, err, sizeof err) != 0 || c.nroutes == 0)
        abort();
    for (size_t i = 0; i < c.nroutes; i++) {
        const gw_route_cfg_t *r = &c.routes[i];
        if (gwconfig_route(&c, r->model) != r)
            abort(); /* route names are unique */
        for (size_t j = 0; j < r->nvariants; j++)
            if (r->variants[j].backend_idx >= c.nbackends)
                abort();
    }
    gwconfig_free(&c);
    return 0;
}
