/* proxy_body.h — what the gateway does to a client's request body before it goes upstream. */
#ifndef TOLLGATE_GATEWAY_PROXY_BODY_H
#define TOLLGATE_GATEWAY_PROXY_BODY_H

#include "core/buf.h"
#include "core/json.h"

/* Write the upstream request body for a parsed client body (an object): the model
 * replaced by upstream_model when not NULL, and when add_usage is set,
 * stream_options.include_usage forced to true (other stream_options kept). Every other
 * member is copied byte for byte. 0, -EINVAL (not an object) or -ENOMEM. */
int proxy_rewrite_body(const json_doc_t *d, const char *upstream_model, int add_usage, buf_t *out);

#endif
