/* test_gw_health.c — the active health probe against local sockets: a 2xx answer is up;
 * a 5xx, a refused connection, garbage and a server that never answers are down. */
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/health.h"

/* A listening socket on 127.0.0.1 with a free port. */
static int listen_any(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 8) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl))
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

typedef struct server {
    int fd;
    const char *answer; /* written after reading the request head */
    char got[512];      /* the request received */
} server_t;

static void *serve_one(void *arg) {
    server_t *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t n = 0;
    while (n < sizeof s->got - 1 && !strstr(s->got, "\r\n\r\n")) {
        ssize_t r = read(c, s->got + n, sizeof s->got - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        s->got[n] = '\0';
    }
    if (write(c, s->answer, strlen(s->answer)) < 0) { /* the probe may be gone */ }
    close(c);
    return NULL;
}

static int probe_with(const char *answer, char *got, size_t gotlen) {
    uint16_t port;
    server_t s = {.answer = answer};
    s.fd = listen_any(&port);
    pthread_t t;
    pthread_create(&t, NULL, serve_one, &s);
    int up = health_check_once("127.0.0.1", port, "/healthz", 2000);
    pthread_join(t, NULL);
    close(s.fd);
    if (got)
        snprintf(got, gotlen, "%s", s.got);
    return up;
}

int main(void) {
    char got[512];
    CHECK_EQ_INT(probe_with("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", got, sizeof got), 1);
    CHECK(strncmp(got, "GET /healthz HTTP/1.1\r\n", 23) == 0);
    CHECK(strstr(got, "Host: 127.0.0.1\r\n") != NULL);
    CHECK_EQ_INT(probe_with("HTTP/1.0 204 No Content\r\n\r\n", NULL, 0), 1);
    CHECK_EQ_INT(probe_with("HTTP/1.1 503 Service Unavailable\r\n\r\n", NULL, 0), 0);
    CHECK_EQ_INT(probe_with("SSH-2.0-OpenSSH_9.2\r\n", NULL, 0), 0);
    CHECK_EQ_INT(probe_with("", NULL, 0), 0); /* closed without a word */

    /* Nothing listening: refused. */
    uint16_t port;
    int fd = listen_any(&port);
    close(fd);
    CHECK_EQ_INT(health_check_once("127.0.0.1", port, "/health", 2000), 0);
    /* Listening but never accepting or answering: down once the timeout passes. */
    fd = listen_any(&port);
    CHECK_EQ_INT(health_check_once("127.0.0.1", port, "/health", 100), 0);
    close(fd);
    return check_summary("test_gw_health");
}
