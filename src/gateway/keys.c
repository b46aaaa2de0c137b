/* keys.c — SHA-256 written from FIPS 180-4 §6.2, constant-time key lookup, key generation. */
#include "gateway/keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64
 * primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

/* §6.2.2: one 512-bit block. */
static void compress(uint32_t h[8], const uint8_t b[64]) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)b[4 * t] << 24 | (uint32_t)b[4 * t + 1] << 16 |
               (uint32_t)b[4 * t + 2] << 8 | b[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + K[t] + w[t];
        uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & bb) ^ (a & c) ^ (bb & c);
        uint32_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = bb;
        bb = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void keys_sha256_init(keys_sha256_t *c) {
    /* §5.3.3: square roots of the first 8 primes. */
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, H0, sizeof H0);
    c->nbytes = 0;
    c->fill = 0;
}

void keys_sha256_update(keys_sha256_t *c, const void *p, size_t n) {
    const uint8_t *s = p;
    c->nbytes += n;
    while (n) {
        size_t k = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, s, k);
        c->fill += k;
        s += k;
        n -= k;
        if (c->fill == 64) {
            compress(c->h, c->block);
            c->fill = 0;
        }
    }
}

void keys_sha256_final(keys_sha256_t *c, uint8_t out[KEYS_HASH_LEN]) {
    /* §5.1.1: a 1 bit, zeros to 448 mod 512, the length in bits as 64-bit big endian. */
    uint64_t bits = c->nbytes * 8;
    uint8_t pad = 0x80;
    keys_sha256_update(c, &pad, 1);
    pad = 0;
    while (c->fill != 56) keys_sha256_update(c, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    keys_sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void keys_sha256(const void *p, size_t n, uint8_t out[KEYS_HASH_LEN]) {
    keys_sha256_t c;
    keys_sha256_init(&c);
    keys_sha256_update(&c, p, n);
    keys_sha256_final(&c, out);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int keys_parse_hash(const char *s, uint8_t out[KEYS_HASH_LEN]) {
    if (!s || strncmp(s, "sha256:", 7) || strlen(s) != 7 + 64) return -EINVAL;
    s += 7;
    for (int i = 0; i < KEYS_HASH_LEN; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void keys_format_hash(const uint8_t h[KEYS_HASH_LEN], char out[KEYS_HASH_TEXT]) {
    static const char hx[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < KEYS_HASH_LEN; i++) {
        out[7 + 2 * i] = hx[h[i] >> 4];
        out[8 + 2 * i] = hx[h[i] & 15];
    }
    out[7 + 64] = '\0';
}

int keys_ct_equal(const void *a, const void *b, size_t n) {
    /* volatile keeps the compiler from turning the loop into an early-exit memcmp. */
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) d |= x[i] ^ y[i];
    return d == 0;
}

int keys_generate(char key[KEYS_KEY_TEXT], char hash[KEYS_HASH_TEXT]) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[33]; /* 32 random bytes + a zero pad so that 43 sextets read in bounds */
    size_t got = 0;
    while (got < 32) {
        ssize_t n = getrandom(r + got, 32 - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        got += (size_t)n;
    }
    r[32] = 0;
    memcpy(key, "tg-", 3);
    for (int i = 0; i < 43; i++) {
        int bit = i * 6, byte = bit / 8, sh = bit % 8;
        unsigned v = ((unsigned)r[byte] << 8 | r[byte + 1]) >> (10 - sh);
        key[3 + i] = b64[v & 63];
    }
    key[46] = '\0';
    uint8_t h[KEYS_HASH_LEN];
    keys_sha256(key, 46, h);
    keys_format_hash(h, hash);
    memset(r, 0, sizeof r);
    return 0;
}

void keys_table_init(keys_table_t *t) {
    memset(t, 0, sizeof *t);
}

void keys_table_free(keys_table_t *t) {
    free(t->e);
    t->e = NULL;
    t->n = t->cap = 0;
}

int keys_table_add(keys_table_t *t, const uint8_t hash[KEYS_HASH_LEN], int service) {
    for (size_t i = 0; i < t->n; i++)
        if (!memcmp(t->e[i].hash, hash, KEYS_HASH_LEN)) return -EEXIST;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 8;
        keys_entry_t *ne = realloc(t->e, nc * sizeof *ne);
        if (!ne) return -ENOMEM;
        t->e = ne;
        t->cap = nc;
    }
    memcpy(t->e[t->n].hash, hash, KEYS_HASH_LEN);
    t->e[t->n].service = service;
    t->n++;
    return 0;
}

int keys_table_add_list(keys_table_t *t, const cfg_node_t *list, int service, const char *dup_what,
                        char *err, size_t errlen) {
    if (list->type != CFG_SEQ)
        return cfg_err(list, err, errlen, "expected a list of key hashes (sha256:...; see tollgate keygen)");
    for (size_t i = 0; i < list->n; i++) {
        const cfg_node_t *k = cfg_at(list, i);
        uint8_t h[KEYS_HASH_LEN];
        if (k->type != CFG_SCALAR || keys_parse_hash(k->value, h))
            return cfg_err(k, err, errlen, "expected sha256: and 64 hex digits (the hash that "
                                           "tollgate keygen prints, never the key itself)");
        int rc = keys_table_add(t, h, service);
        if (rc == -EEXIST) return cfg_err(k, err, errlen, "this key hash is already listed%s", dup_what);
        if (rc) return rc;
    }
    return 0;
}

int keys_table_lookup(const keys_table_t *t, const char *key, size_t len) {
    if (!key || len == 0 || len > KEYS_MAX_KEY) return -1;
    uint8_t h[KEYS_HASH_LEN];
    keys_sha256(key, len, h);
    int found = -1;
    for (size_t i = 0; i < t->n; i++) {
        /* Branch-free select: every entry costs the same whether it matches or not. */
        int eq = keys_ct_equal(h, t->e[i].hash, KEYS_HASH_LEN);
        int mask = -eq;
        found = (found & ~mask) | (t->e[i].service & mask);
    }
    return found;
}

const char *keys_bearer(const char *v, size_t *len) {
    if (!v) return NULL;
    while (*v == ' ' || *v == '\t') v++;
    if (strncasecmp(v, "bearer", 6) || (v[6] != ' ' && v[6] != '\t')) return NULL;
    v += 6;
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (!n) return NULL;
    *len = n;
    return v;
}
