/* test_gw_keys.c — SHA-256 against FIPS 180-4 / NIST vectors, hash text, constant-time
 * lookup, bearer parsing, generated keys. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gateway/keys.h"

static void hex(const uint8_t *h, char *out) {
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", h[i]);
}

static void test_sha256(void) {
    /* NIST CSRC example vectors (SHA256.pdf) and the well-known empty-string digest. */
    struct {
        const char *in;
        const char *want;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "mnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char got[65];
    uint8_t h[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        keys_sha256(v[i].in, strlen(v[i].in), h);
        hex(h, got);
        CHECK_EQ_STR(got, v[i].want);
    }
    /* One million 'a', fed in uneven pieces (block boundary handling). */
    keys_sha256_t c;
    keys_sha256_init(&c);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        keys_sha256_update(&c, a, k);
        left -= k;
    }
    keys_sha256_final(&c, h);
    hex(h, got);
    CHECK_EQ_STR(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* Every length 0..200 byte-at-a-time equals one shot. */
    char buf[200];
    for (int i = 0; i < 200; i++) buf[i] = (char)(i * 7 + 3);
    int same = 1;
    for (size_t n = 0; n <= 200; n++) {
        uint8_t h1[32], h2[32];
        keys_sha256(buf, n, h1);
        keys_sha256_init(&c);
        for (size_t i = 0; i < n; i++) keys_sha256_update(&c, buf + i, 1);
        keys_sha256_final(&c, h2);
        same &= !memcmp(h1, h2, 32);
    }
    CHECK(same);
}

static void test_hash_text(void) {
    uint8_t h[32], h2[32];
    char t[KEYS_HASH_TEXT];
    keys_sha256("abc", 3, h);
    keys_format_hash(h, t);
    CHECK_EQ_STR(t, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(keys_parse_hash(t, h2), 0);
    CHECK(!memcmp(h, h2, 32));
    CHECK_EQ_INT(keys_parse_hash(
                     "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", h2),
                 0);
    CHECK(!memcmp(h, h2, 32));
    CHECK_EQ_INT(
        keys_parse_hash("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h2),
        -EINVAL);
    CHECK_EQ_INT(keys_parse_hash("sha256:ba78", h2), -EINVAL);
    CHECK_EQ_INT(keys_parse_hash(
                     "sha256:za7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h2),
                 -EINVAL);
    CHECK_EQ_INT(
        keys_parse_hash("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
                        h2),
        -EINVAL);
    CHECK_EQ_INT(keys_parse_hash(NULL, h2), -EINVAL);
}

static void test_ct_and_table(void) {
    CHECK(keys_ct_equal("abcd", "abcd", 4));
    CHECK(!keys_ct_equal("abcd", "abce", 4));
    CHECK(!keys_ct_equal("xbcd", "abcd", 4));
    CHECK(keys_ct_equal("", "", 0));

    keys_table_t t;
    keys_table_init(&t);
    uint8_t h[32];
    keys_sha256("key-orders", 10, h);
    CHECK_EQ_INT(keys_table_add(&t, h, 0), 0);
    CHECK_EQ_INT(keys_table_add(&t, h, 1), -EEXIST);
    keys_sha256("key-search", 10, h);
    CHECK_EQ_INT(keys_table_add(&t, h, 1), 0);
    keys_sha256("key-orders-2", 12, h);
    CHECK_EQ_INT(keys_table_add(&t, h, 0), 0);
    CHECK_EQ_INT(keys_table_lookup(&t, "key-orders", 10), 0);
    CHECK_EQ_INT(keys_table_lookup(&t, "key-search", 10), 1);
    CHECK_EQ_INT(keys_table_lookup(&t, "key-orders-2", 12), 0);
    CHECK_EQ_INT(keys_table_lookup(&t, "key-orders-", 11), -1);
    CHECK_EQ_INT(keys_table_lookup(&t, "", 0), -1);
    CHECK_EQ_INT(keys_table_lookup(&t, NULL, 0), -1);
    keys_table_free(&t);
    keys_table_init(&t);
    CHECK_EQ_INT(keys_table_lookup(&t, "key", 3), -1);
    keys_table_free(&t);
}

static void test_bearer(void) {
    size_t n = 0;
    const char *k = keys_bearer("Bearer abc", &n);
    CHECK(k && n == 3 && !memcmp(k, "abc", 3));
    k = keys_bearer("  bearer \t tg-x  ", &n);
    CHECK(k && n == 4 && !memcmp(k, "tg-x", 4));
    CHECK(keys_bearer("Basic abc", &n) == NULL);
    CHECK(keys_bearer("Bearer", &n) == NULL);
    CHECK(keys_bearer("Bearer   ", &n) == NULL);
    CHECK(keys_bearer("Bearerabc", &n) == NULL);
    CHECK(keys_bearer(NULL, &n) == NULL);
}

static void test_generate(void) {
    char k1[KEYS_KEY_TEXT], h1[KEYS_HASH_TEXT], k2[KEYS_KEY_TEXT], h2[KEYS_HASH_TEXT];
    CHECK_EQ_INT(keys_generate(k1, h1), 0);
    CHECK_EQ_INT(keys_generate(k2, h2), 0);
    CHECK_EQ_INT(strlen(k1), 46);
    CHECK(!strncmp(k1, "tg-", 3));
    CHECK(strcmp(k1, k2) != 0);
    CHECK(strspn(k1 + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43);
    uint8_t h[32], hp[32];
    keys_sha256(k1, strlen(k1), h);
    CHECK_EQ_INT(keys_parse_hash(h1, hp), 0);
    CHECK(!memcmp(h, hp, 32));
}

int main(void) {
    test_sha256();
    test_hash_text();
    test_ct_and_table();
    test_bearer();
    test_generate();
    return check_summary("test_gw_keys");
}
