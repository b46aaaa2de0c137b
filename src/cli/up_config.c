/* up_config.c — the gateway config `tollgate up` runs, derived from a template config. */
#include "cli/up_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UP_NAME_MAX 128

static void set_err(char *err, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static size_t indent_of(const char *line) {
    size_t n = 0;
    while (line[n] == ' ') n++;
    return n;
}

/* If line is a mapping key with nothing after the colon but a comment ("  engine:  # x"),
 * copy the key into name and return 1. */
static int key_only_line(const char *line, char *name, size_t cap) {
    const char *p = line + indent_of(line);
    size_t n = 0;
    while (p[n] && p[n] != ':' && p[n] != ' ' && p[n] != '#') n++;
    if (n == 0 || p[n] != ':' || n >= cap) return 0;
    const char *rest = p + n + 1;
    while (*rest == ' ') rest++;
    if (*rest && *rest != '#') return 0;
    memcpy(name, p, n);
    name[n] = '\0';
    return 1;
}

/* Append line to out with each from[i] replaced by to[i], in one left-to-right scan (so a
 * new address equal to another old one is not replaced twice). */
static void put_addresses(FILE *out, const char *line, const char *const *from,
                          const char *const *to, int n) {
    for (const char *p = line; *p;) {
        int i;
        for (i = 0; i < n; i++)
            if (!strncmp(p, from[i], strlen(from[i]))) break;
        if (i < n) {
            /* "[::1]:8000" unquoted would be a YAML flow sequence */
            int quote = to[i][0] == '[' && (p == line || (p[-1] != '\'' && p[-1] != '"'));
            fprintf(out, quote ? "'%s'" : "%s", to[i]);
            p += strlen(from[i]);
        } else {
            fputc(*p++, out);
        }
    }
}

/* 1 when line holds "backend: NAME" with NAME ending there (not a longer name). */
static int names_backend(const char *line, const char *name) {
    char pat[UP_NAME_MAX + 16];
    snprintf(pat, sizeof pat, "backend: %s", name);
    const char *hit = strstr(line, pat);
    if (!hit) return 0;
    char after = hit[strlen(pat)];
    return after == '\0' || after == ',' || after == '}' || after == ' ' || after == '#' ||
           after == '\n' || after == '\r';
}

/* The YAML double-quoted form of s (model names may hold ':' or '/'). */
static void put_quoted(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Split text into lines in place (each keeps no '\n'); returns the count. */
static size_t split_lines(char *text, char ***lines_out) {
    size_t n = 1;
    for (char *p = text; *p; p++) n += *p == '\n';
    char **lines = calloc(n, sizeof *lines);
    if (!lines) return 0;
    size_t i = 0;
    for (char *p = text; p && i < n;) {
        lines[i++] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
    *lines_out = lines;
    return i;
}

static char *read_file(const char *path, char *err, size_t errcap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errcap, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, r;
    do {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                set_err(err, errcap, "out of memory reading %s", path);
                return NULL;
            }
            text = t;
        }
        r = fread(text + len, 1, cap - len - 1, f);
        len += r;
    } while (r > 0);
    fclose(f);
    text[len] = '\0';
    return text;
}

int up_config_write(const char *template_path, const char *out_path, const up_config_opts_t *o,
                    char *err, size_t errcap) {
    char *text = read_file(template_path, err, errcap);
    if (!text) return -1;
    char **lines = NULL;
    size_t n = split_lines(text, &lines);
    int rc = -1;
    FILE *out = NULL;
    if (!n) {
        set_err(err, errcap, "out of memory");
        goto done;
    }

    /* Pass 1: which backend holds the engine address (its variants get the model name,
     * its health check the path). Backends are the two-space keys under `backends:`. */
    char section[UP_NAME_MAX] = "", backend[UP_NAME_MAX] = "", engine_backend[UP_NAME_MAX] = "";
    for (size_t i = 0; i < n; i++) {
        char key[UP_NAME_MAX];
        size_t ind = indent_of(lines[i]);
        if (lines[i][ind] == '#' || lines[i][ind] == '\0') continue;
        if (ind == 0) {
            const char *c = strchr(lines[i], ':');
            size_t kl = c ? (size_t)(c - lines[i]) : 0;
            if (kl >= sizeof section) kl = 0;
            memcpy(section, lines[i], kl);
            section[kl] = '\0';
        } else if (ind == 2 && !strcmp(section, "backends") &&
                   key_only_line(lines[i], key, sizeof key)) {
            strcpy(backend, key);
        }
        if (!strcmp(section, "backends") && strstr(lines[i], UP_TEMPLATE_ENGINE) && backend[0])
            strcpy(engine_backend, backend);
    }
    if (!engine_backend[0]) {
        set_err(err, errcap,
                "%s has no backend with the address %s (the engine's, in examples/tollgate.yaml); "
                "up cannot point it at %s",
                template_path, UP_TEMPLATE_ENGINE, o->engine);
        goto done;
    }

    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* holds keys */
    if (fd < 0 || !(out = fdopen(fd, "w"))) {
        set_err(err, errcap, "cannot write %s: %s", out_path, strerror(errno));
        if (fd >= 0) close(fd);
        goto done;
    }
    fprintf(out, "# Written by `tollgate up` from %s: engine at %s", template_path, o->engine);
    if (o->upstream_model) fprintf(out, " (model \"%s\" upstream)", o->upstream_model);
    fprintf(out, "%s.\n", o->instruct ? ", the tasks' system prompt enabled" : "");

    /* Pass 2: write, editing as we go. */
    int renamed = 0, health_set = 0, prompts = 0;
    size_t uncomment_at = (size_t)-1; /* indent of a system prompt being uncommented */
    section[0] = backend[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char *line = lines[i], key[UP_NAME_MAX];
        size_t ind = indent_of(line);
        if (i + 1 == n && line[0] == '\0') break; /* the empty piece after the final newline */

        /* Continuation lines of a system prompt being uncommented: "    #   text". */
        if (uncomment_at != (size_t)-1) {
            if (ind == uncomment_at && !strncmp(line + ind, "#   ", 4)) {
                fprintf(out, "%.*s%s\n", (int)ind, line, line + ind + 2);
                continue;
            }
            uncomment_at = (size_t)-1;
        }
        if (o->instruct && line[ind] == '#') {
            const char *p = line + ind + 1;
            while (*p == ' ') p++;
            if (!strncmp(p, "system:", 7) && !strcmp(section, "tasks")) {
                fprintf(out, "%.*s%s\n", (int)ind, line, p);
                uncomment_at = ind;
                prompts++;
                continue;
            }
        }
        if (line[ind] != '#' && line[ind] != '\0') {
            if (ind == 0) {
                const char *c = strchr(line, ':');
                size_t kl = c ? (size_t)(c - line) : 0;
                if (kl >= sizeof section) kl = 0;
                memcpy(section, line, kl);
                section[kl] = '\0';
            } else if (ind == 2 && !strcmp(section, "backends") &&
                       key_only_line(line, key, sizeof key)) {
                strcpy(backend, key);
            }
            if (!strcmp(section, "tasks") && !strncmp(line + ind, "system:", 7))
                prompts++; /* a system prompt already active */
        }

        /* Addresses. Health-check path of the engine backend. */
        char tmp[4096];
        if (strlen(line) >= sizeof tmp) {
            set_err(err, errcap, "%s:%zu: line too long", template_path, i + 1);
            goto done;
        }
        strcpy(tmp, line);
        if (o->engine_health && !strcmp(section, "backends") && !strcmp(backend, engine_backend) &&
            strstr(tmp, "path: /health")) {
            char *h = strstr(tmp, "/health");
            char rest[4096];
            snprintf(rest, sizeof rest, "%s", h + strlen("/health"));
            snprintf(h, sizeof tmp - (size_t)(h - tmp), "%s%s", o->engine_health, rest);
            health_set++;
        }
        int is_route_variant = o->upstream_model && !strcmp(section, "routes") &&
                               line[ind] != '#' && names_backend(line, engine_backend);
        char *brace = is_route_variant ? strrchr(tmp, '}') : NULL;
        if (brace) /* flow form: {backend: engine, weight: 100} */
            *brace = '\0';

        const char *from[3] = {UP_TEMPLATE_ENGINE, UP_TEMPLATE_SIM_STABLE, UP_TEMPLATE_SIM_CANARY};
        const char *to[3] = {o->engine, o->sim_stable, o->sim_canary};
        put_addresses(out, tmp, from, to, 3);
        if (brace) {
            fputs(", upstream_model: ", out);
            put_quoted(out, o->upstream_model);
            fputc('}', out);
            fputs(brace + 1, out);
            renamed++;
            fputc('\n', out);
        } else if (is_route_variant) {
            /* block form: the key on its own line; its sibling goes right after it */
            const char *b = strstr(line, "backend:");
            fprintf(out, "\n%*supstream_model: ", (int)(b - line), "");
            put_quoted(out, o->upstream_model);
            fputc('\n', out);
            renamed++;
        } else {
            fputc('\n', out);
        }
    }
    if (o->upstream_model && !renamed) {
        set_err(err, errcap, "%s has no route variant on backend \"%s\" to send model \"%s\" to",
                template_path, engine_backend, o->upstream_model);
        goto done;
    }
    if (o->engine_health && !health_set) {
        set_err(err, errcap, "%s: backend \"%s\" has no \"path: /health\" health check to change",
                template_path, engine_backend);
        goto done;
    }
    if (o->instruct && !prompts) {
        set_err(err, errcap,
                "%s has no task system prompt (active or as a commented-out \"# system:\"), which "
                "a general instruction model needs; add one to the task or use --prompt trained",
                template_path);
        goto done;
    }
    if (fflush(out) != 0) {
        set_err(err, errcap, "cannot write %s: %s", out_path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (out && fclose(out) != 0 && rc == 0) {
        set_err(err, errcap, "cannot write %s: %s", out_path, strerror(errno));
        rc = -1;
    }
    free(lines);
    free(text);
    return rc;
}
