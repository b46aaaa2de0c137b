/* test_json.c — JSON parser (valid/invalid corpus, truncation, limits), getters and writer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "core/json.h"

#define NT 256

/* Copy text to the very end of a page followed by an inaccessible page, so that any read
 * past len faults under any build (not only ASan). */
static char *guard_base;
static size_t guard_size;

static const char *guarded(const char *s, size_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    size_t need = (n + (size_t)pg - 1) / (size_t)pg * (size_t)pg + (size_t)pg;
    if (need + (size_t)pg > guard_size) {
        if (guard_base)
            munmap(guard_base, guard_size);
        guard_size = need + (size_t)pg;
        guard_base = mmap(NULL, guard_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
    }
    mprotect(guard_base, guard_size, PROT_READ | PROT_WRITE);
    mprotect(guard_base + need, (size_t)pg, PROT_NONE);
    char *dst = guard_base + need - n;
    memcpy(dst, s, n);
    return dst;
}

static int parse(const char *s, size_t n, json_doc_t *d, size_t *err) {
    static json_tok_t toks[NT];
    return json_parse(guarded(s, n), n, toks, NT, 0, d, err);
}

static const char *valid_docs[] = {
    "{}", "[]", "0", "-0", "1", "-1", "12345", "1.5", "-0.25", "1e10", "1E+2", "2e-3",
    "0.0e0", "-123.456e-78", "true", "false", "null", "\"\"", "\"abc\"", " \t\r\n[1] \n",
    "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\"\\u0041\\u00e9\\u20AC\"",
    "\"\\ud83d\\ude00\"",                 /* U+1F600 as a surrogate pair */
    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"", /* é € 😀 U+10FFFF */
    "\"\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"",               /* U+FFFF U+D7FF U+E000 */
    "[1,2,3]", "[ 1 , [ 2 , [ ] ] , { } ]", "{\"a\":1}", "{ \"a\" : [true,false,null] , \"b\":{}}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
    "\"max_tokens\":64,\"temperature\":0.7}",
    "[\"a long string that is more than sixteen bytes for the vector path, with \\\"quotes\\\""
    " and \xc3\xa9 in it\"]",
    "{\"\":\"\"}", "[[[[[[[[[[]]]]]]]]]]", "{\"a\":{\"b\":{\"c\":[{\"d\":null}]}}}",
};

struct bad {
    const char *s;
    size_t len; /* 0: strlen */
    size_t pos;
};

static const struct bad invalid_docs[] = {
    {"", 0, 0}, {" ", 0, 1}, {"[", 0, 1}, {"]", 0, 0}, {"{", 0, 1}, {"}", 0, 0},
    {"[1,]", 0, 3}, {"[,1]", 0, 1}, {"[1 2]", 0, 3}, {"{\"a\"}", 0, 4}, {"{\"a\":}", 0, 5},
    {"{\"a\":1,}", 0, 7}, {"{a:1}", 0, 1}, {"{1:1}", 0, 1}, {"{\"a\" 1}", 0, 5},
    {"[1}", 0, 2}, {"{\"a\":1]", 0, 6}, {"01", 0, 1}, {"-", 0, 1}, {"-a", 0, 1},
    {"1.", 0, 2}, {".5", 0, 0}, {"1.e5", 0, 2}, {"1e", 0, 2}, {"1e+", 0, 3}, {"+1", 0, 0},
    {"0x10", 0, 1}, {"NaN", 0, 0}, {"Infinity", 0, 0}, {"-Infinity", 0, 1}, {"tru", 0, 0},
    {"truex", 0, 4}, {"nul", 0, 0}, {"True", 0, 0}, {"1 2", 0, 2}, {"[] []", 0, 3},
    {"\"abc", 0, 4}, {"'a'", 0, 0}, {"\"a\tb\"", 0, 2}, {"\"a\nb\"", 0, 2},
    {"\"\\x\"", 0, 2}, {"\"\\u12\"", 0, 5}, {"\"\\u12G4\"", 0, 5}, {"\"\\u12", 0, 5}, {"\"\\", 0, 2},
    {"\"\\ud800\"", 0, 7},          /* lone high surrogate */
    {"\"\\ud800", 0, 7}, {"\"\\ud800\\", 0, 8}, {"\"\\ud800\\udc", 0, 11},
    {"\"\\udc00\"", 0, 1},          /* lone low surrogate */
    {"\"\\ud800\\u0041\"", 0, 7},   /* high + non-low */
    {"\"\\ud800\\n\"", 0, 7},       /* high + other escape */
    {"\"\xc0\x80\"", 0, 1},         /* overlong NUL */
    {"\"\xc1\xbf\"", 0, 1},         /* overlong */
    {"\"\xe0\x80\x80\"", 0, 2},     /* overlong 3-byte */
    {"\"\xe0\x9f\xbf\"", 0, 2},     /* overlong 3-byte */
    {"\"\xf0\x80\x80\x80\"", 0, 2}, /* overlong 4-byte */
    {"\"\xf0\x8f\xbf\xbf\"", 0, 2}, /* overlong 4-byte */
    {"\"\xed\xa0\x80\"", 0, 2},     /* encoded surrogate U+D800 */
    {"\"\xed\xbf\xbf\"", 0, 2},     /* encoded surrogate U+DFFF */
    {"\"\xf4\x90\x80\x80\"", 0, 2}, /* U+110000 */
    {"\"\xf5\x80\x80\x80\"", 0, 1}, /* never a lead byte */
    {"\"\xff\"", 0, 1}, {"\"\x80\"", 0, 1}, {"\"\xc3\"", 0, 2}, {"\"\xc3(\"", 0, 2},
    {"\"\xe2\x82\"", 0, 3}, {"\"\xe2\x82", 0, 3}, {"[\"a\",\"\xe2\x28\xa1\"]", 0, 7},
    {"\xef\xbb\xbf[]", 0, 0}, /* a BOM is not JSON whitespace */
    {"[1]\f", 0, 3}, {"\v1", 0, 0}, {"[1]\0", 4, 3}, {"\"a\0b\"", 5, 2},
    {"/* c */ 1", 0, 0}, {"[1] // c", 0, 4},
};

static void test_valid(void) {
    json_doc_t d;
    size_t err = 0;
    int fails = 0;
    for (size_t i = 0; i < sizeof valid_docs / sizeof *valid_docs; i++) {
        const char *s = valid_docs[i];
        int n = parse(s, strlen(s), &d, &err);
        if (n <= 0) {
            fails++;
            fprintf(stderr, "valid doc %zu rejected (%d at %zu): %s\n", i, n, err, s);
        }
    }
    CHECK_EQ_INT(fails, 0);
}

static void test_invalid(void) {
    json_doc_t d;
    int fails = 0;
    for (size_t i = 0; i < sizeof invalid_docs / sizeof *invalid_docs; i++) {
        const struct bad *b = &invalid_docs[i];
        size_t n = b->len ? b->len : strlen(b->s), err = 12345;
        int rc = parse(b->s, n, &d, &err);
        if (rc != JSON_ERR_SYNTAX || err != b->pos) {
            fails++;
            fprintf(stderr, "invalid doc %zu: rc %d err_pos %zu (want %zu)\n", i, rc, err,
                    b->pos);
        }
    }
    CHECK_EQ_INT(fails, 0);
}

/* Every proper prefix of a valid document is rejected unless it is itself a whole value
 * (only a number, or a document followed by whitespace, can be cut and stay whole). */
static void test_truncation(void) {
    json_doc_t d;
    int wrong = 0, cases = 0;
    for (size_t i = 0; i < sizeof valid_docs / sizeof *valid_docs; i++) {
        const char *s = valid_docs[i];
        size_t len = strlen(s), end = len;
        while (end && strchr(" \t\r\n", s[end - 1])) end--;
        size_t beg = 0;
        while (beg < len && strchr(" \t\r\n", s[beg])) beg++;
        int is_num = s[beg] == '-' || (s[beg] >= '0' && s[beg] <= '9');
        for (size_t k = 0; k < len; k++) {
            size_t err = 999999;
            int rc = parse(s, k, &d, &err);
            int want_ok = k >= end;
            if (is_num && k > beg) { /* "12" is whole, "1." "1e" "-" are not */
                char last = s[k - 1];
                want_ok = last >= '0' && last <= '9';
            }
            cases++;
            if (want_ok ? rc <= 0 : (rc != JSON_ERR_SYNTAX || err > k)) {
                wrong++;
                fprintf(stderr, "prefix %zu of doc %zu: rc %d err %zu\n", k, i, rc, err);
            }
        }
    }
    CHECK(cases > 500);
    CHECK_EQ_INT(wrong, 0);
}

static void test_tokens(void) {
    const char *s = "{\"a\": [1, \"x\\n\", {\"b\": null}], \"c\": true}";
    json_tok_t toks[16];
    json_doc_t d;
    size_t err;
    int n = json_parse(s, strlen(s), toks, 16, 0, &d, &err);
    CHECK_EQ_INT(n, 10);
    CHECK_EQ_INT(d.ntoks, 10);
    CHECK_EQ_INT(toks[0].type, JSON_OBJECT);
    CHECK_EQ_INT(toks[0].size, 2);
    CHECK_EQ_INT(toks[0].start, 0);
    CHECK_EQ_INT(toks[0].end, strlen(s));
    CHECK_EQ_INT(toks[0].next, 10);
    CHECK_EQ_INT(toks[1].type, JSON_STRING); /* "a" */
    CHECK_EQ_INT(toks[1].start, 2);
    CHECK_EQ_INT(toks[1].end, 3);
    CHECK_EQ_INT(toks[2].type, JSON_ARRAY);
    CHECK_EQ_INT(toks[2].size, 3);
    CHECK_EQ_INT(toks[2].next, 8);
    CHECK_EQ_INT(toks[3].type, JSON_NUMBER);
    CHECK_EQ_INT(toks[4].type, JSON_STRING);
    CHECK_EQ_INT(toks[4].has_escape, 1);
    CHECK_EQ_INT(toks[3].has_escape, 0);
    CHECK_EQ_INT(toks[5].type, JSON_OBJECT);
    CHECK_EQ_INT(toks[5].size, 1);
    CHECK_EQ_INT(toks[5].next, 8);
    CHECK_EQ_INT(toks[7].type, JSON_NULL);
    CHECK_EQ_INT(toks[9].type, JSON_TRUE);
    CHECK_EQ_INT(json_obj_get(&d, 0, "c"), 9);
    CHECK_EQ_INT(json_obj_get(&d, 0, "a"), 2);
    CHECK_EQ_INT(json_obj_get(&d, 0, "b"), -1); /* only searches the object's own keys */
    CHECK_EQ_INT(json_obj_get(&d, 2, "a"), -1); /* not an object */
    CHECK_EQ_INT(json_arr_get(&d, 2, 0), 3);
    CHECK_EQ_INT(json_arr_get(&d, 2, 1), 4);
    CHECK_EQ_INT(json_arr_get(&d, 2, 2), 5);
    CHECK_EQ_INT(json_arr_get(&d, 2, 3), -1);
    CHECK_EQ_INT(json_obj_get(&d, 5, "b"), 7);
    CHECK_EQ_INT(json_get_bool(&d, 9), 1);
    CHECK_EQ_INT(json_get_bool(&d, 7), -1);
    CHECK(json_str_eq(&d, 4, "x\n"));
    CHECK(!json_str_eq(&d, 4, "x\\n"));
    CHECK(!json_str_eq(&d, 4, "x"));
    CHECK(!json_str_eq(&d, 4, "x\nz"));
    CHECK(!json_str_eq(&d, 3, "1"));
    /* exact capacity works, one less is NOMEM */
    CHECK_EQ_INT(json_parse(s, strlen(s), toks, 10, 0, &d, &err), 10);
    CHECK_EQ_INT(json_parse(s, strlen(s), toks, 9, 0, &d, &err), JSON_ERR_NOMEM);
    CHECK_EQ_INT(json_parse(s, strlen(s), toks, 0, 0, &d, &err), JSON_ERR_NOMEM);
    CHECK_EQ_INT(json_parse("[1,2,3,4,5]", 11, toks, 3, 0, &d, &err), JSON_ERR_NOMEM);
    CHECK_EQ_INT(err, 5);
}

static void test_strings(void) {
    json_doc_t d;
    size_t err;
    buf_t b;
    buf_init(&b);
    const char *s = "[\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\/\\\"\\\\\\b\\f\\n\\r\\t\", \"plain\","
                    " \"\", \"\\u0000x\", \"\\uD834\\uDD1E\"]";
    CHECK(parse(s, strlen(s), &d, &err) > 0);
    CHECK_EQ_INT(json_str_unescape(&d, 1, &b), 0);
    CHECK_EQ_STR(b.data, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/\"\\\b\f\n\r\t");
    CHECK(json_str_eq(&d, 1, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/\"\\\b\f\n\r\t"));
    buf_reset(&b);
    CHECK_EQ_INT(json_str_unescape(&d, 2, &b), 0);
    CHECK_EQ_STR(b.data, "plain");
    buf_free(&b);
    CHECK_EQ_INT(json_str_unescape(&d, 3, &b), 0); /* empty string still NUL-terminated */
    CHECK(b.data && b.len == 0 && b.data[0] == '\0');
    CHECK(json_str_eq(&d, 3, ""));
    buf_reset(&b);
    CHECK_EQ_INT(json_str_unescape(&d, 4, &b), 0);
    CHECK_EQ_INT(b.len, 2);
    CHECK(b.data[0] == '\0' && b.data[1] == 'x');
    CHECK(!json_str_eq(&d, 4, "")); /* an embedded NUL never equals a C string */
    buf_reset(&b);
    CHECK_EQ_INT(json_str_unescape(&d, 5, &b), 0);
    CHECK_EQ_STR(b.data, "\xf0\x9d\x84\x9e"); /* U+1D11E */
    /* appends, does not reset */
    CHECK_EQ_INT(json_str_unescape(&d, 2, &b), 0);
    CHECK_EQ_STR(b.data, "\xf0\x9d\x84\x9eplain");
    CHECK(json_str_unescape(&d, 0, &b) < 0); /* not a string */
    CHECK(json_str_unescape(&d, 99, &b) < 0);
    buf_free(&b);
}

static void test_numbers(void) {
    json_doc_t d;
    size_t err;
    const char *s = "[0, -0, 42, -42, 9223372036854775807, -9223372036854775808,"
                    " 9223372036854775808, -9223372036854775809, 1.5, 1e3, 100.0, 1e400,"
                    " 2.5e-3, 1e-400, 12345678901234567890123, \"7\"]";
    CHECK(parse(s, strlen(s), &d, &err) > 0);
    int64_t v = 77;
    double dv = 0;
    int i;
#define EL(k) json_arr_get(&d, 0, (k))
    CHECK(json_get_i64(&d, EL(0), &v) == 0 && v == 0);
    CHECK(json_get_i64(&d, EL(1), &v) == 0 && v == 0);
    CHECK(json_get_i64(&d, EL(2), &v) == 0 && v == 42);
    CHECK(json_get_i64(&d, EL(3), &v) == 0 && v == -42);
    CHECK(json_get_i64(&d, EL(4), &v) == 0 && v == INT64_MAX);
    CHECK(json_get_i64(&d, EL(5), &v) == 0 && v == INT64_MIN);
    CHECK_EQ_INT(json_get_i64(&d, EL(6), &v), -1);
    CHECK_EQ_INT(json_get_i64(&d, EL(7), &v), -1);
    CHECK_EQ_INT(json_get_i64(&d, EL(8), &v), -1); /* 1.5 is not an integer */
    CHECK(json_get_i64(&d, EL(9), &v) == 0 && v == 1000);
    CHECK(json_get_i64(&d, EL(10), &v) == 0 && v == 100);
    CHECK_EQ_INT(json_get_i64(&d, EL(11), &v), -1);
    CHECK_EQ_INT(json_get_i64(&d, EL(15), &v), -1); /* a string */
    CHECK(json_get_double(&d, EL(8), &dv) == 0 && dv == 1.5);
    CHECK(json_get_double(&d, EL(5), &dv) == 0 && dv == -9223372036854775808.0);
    CHECK_EQ_INT(json_get_double(&d, EL(11), &dv), -1); /* overflows a double */
    CHECK(json_get_double(&d, EL(12), &dv) == 0 && dv == 2.5e-3);
    CHECK(json_get_double(&d, EL(13), &dv) == 0 && dv == 0.0);
    CHECK(json_get_double(&d, EL(14), &dv) == 0 && dv == 12345678901234567890123.0);
    CHECK_EQ_INT(json_get_double(&d, EL(15), &dv), -1);
    /* a number longer than the getter's stack buffer */
    char big[400];
    memset(big, '1', 300);
    memcpy(big + 300, ".5e-250", 8); /* 1.11e299 * 1e-250 */
    json_tok_t t[2];
    CHECK_EQ_INT(json_parse(big, strlen(big), t, 2, 0, &d, &err), 1);
    CHECK(json_get_double(&d, 0, &dv) == 0 && dv > 1.1e49 && dv < 1.2e49);
    i = json_get_i64(&d, 0, &v);
    CHECK_EQ_INT(i, -1);
#undef EL
}

static void test_depth(void) {
    static char deep[200001];
    static json_tok_t toks[300];
    json_doc_t d;
    size_t err = 0;
    for (int n = 127; n <= 129; n++) {
        memset(deep, '[', (size_t)n);
        memset(deep + n, ']', (size_t)n);
        int rc = json_parse(deep, 2 * (size_t)n, toks, 300, 128, &d, &err);
        if (n <= 128)
            CHECK_EQ_INT(rc, n);
        else {
            CHECK_EQ_INT(rc, JSON_ERR_DEPTH);
            CHECK_EQ_INT(err, 128);
        }
    }
    /* default limit (max_depth <= 0 is 128) */
    CHECK_EQ_INT(json_parse(deep, 2 * 129, toks, 300, 0, &d, &err), JSON_ERR_DEPTH);
    /* a custom small limit, objects count too */
    const char *o = "{\"a\":{\"b\":[1]}}";
    CHECK_EQ_INT(json_parse(o, strlen(o), toks, 300, 3, &d, &err), 6);
    CHECK_EQ_INT(json_parse(o, strlen(o), toks, 300, 2, &d, &err), JSON_ERR_DEPTH);
    CHECK_EQ_INT(err, 10);
    /* 100000 levels: no recursion, so no stack overflow even with a huge limit */
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    static json_tok_t many[100000];
    CHECK_EQ_INT(json_parse(deep, 200000, many, 100000, 1000000, &d, &err), 100000);
    CHECK_EQ_INT(many[0].next, 100000);
    CHECK_EQ_INT(many[99999].end, 100001);
    CHECK_EQ_INT(json_parse(deep, 200000, many, 100000, 0, &d, &err), JSON_ERR_DEPTH);
}

static void test_writer(void) {
    buf_t b;
    buf_init(&b);
    json_w_t w;
    json_w_init(&w, &b);
    json_w_obj_begin(&w);
    json_w_key(&w, "s");
    json_w_str(&w, "a\"b\\c\n\r\t\b\f\x01\x1f/\xc3\xa9");
    json_w_key(&w, "i");
    json_w_i64(&w, INT64_MIN);
    json_w_key(&w, "arr");
    json_w_arr_begin(&w);
    json_w_i64(&w, 1);
    json_w_double(&w, 0.1);
    json_w_bool(&w, 1);
    json_w_bool(&w, 0);
    json_w_null(&w);
    json_w_arr_begin(&w);
    json_w_arr_end(&w);
    json_w_obj_begin(&w);
    json_w_obj_end(&w);
    json_w_raw(&w, "{\"x\":[]}", 8);
    json_w_double(&w, NAN);
    json_w_double(&w, -INFINITY);
    json_w_arr_end(&w);
    json_w_key(&w, "k\"ey");
    json_w_str(&w, NULL);
    json_w_obj_end(&w);
    CHECK_EQ_STR(b.data, "{\"s\":\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\xc3\xa9\","
                         "\"i\":-9223372036854775808,\"arr\":[1,0.1,true,false,null,[],{},"
                         "{\"x\":[]},null,null],\"k\\\"ey\":null}");
    json_doc_t d;
    size_t err;
    CHECK(parse(b.data, b.len, &d, &err) > 0);

    /* invalid UTF-8 becomes U+FFFD, one per maximal ill-formed subpart */
    buf_reset(&b);
    json_w_init(&w, &b);
    json_w_strn(&w, "a\xff" "b\xe2\x82" "c\xc0\x80\xed\xa0\x80\xf0\x9f\x98", 14);
    CHECK_EQ_STR(b.data, "\"a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK(parse(b.data, b.len, &d, &err) > 0);
    buf_reset(&b);
    json_w_init(&w, &b);
    json_w_strn(&w, "x\0y", 3); /* embedded NUL */
    CHECK_EQ_STR(b.data, "\"x\\u0000y\"");

    /* doubles: shortest form that reads back exactly */
    char tmp[32];
    json_fmt_double(0.1, tmp);
    CHECK_EQ_STR(tmp, "0.1");
    json_fmt_double(1.0 / 3, tmp);
    CHECK_EQ_STR(tmp, "0.3333333333333333");
    json_fmt_double(1e300, tmp);
    CHECK_EQ_STR(tmp, "1e+300");
    json_fmt_double(5e-324, tmp);
    CHECK_EQ_STR(tmp, "4.94065645841247e-324"); /* %.15g already reads back */
    json_fmt_double(-0.0, tmp);
    CHECK_EQ_STR(tmp, "-0");
    json_fmt_double(0.5, tmp);
    CHECK_EQ_STR(tmp, "0.5");
    buf_free(&b);
}

/* xorshift so the test is the same on every run */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_roundtrip(void) {
    buf_t b, u;
    buf_init(&b);
    buf_init(&u);
    json_w_t w;
    json_doc_t d;
    json_tok_t toks[8];
    size_t err;
    int bad_double = 0, bad_str = 0, bad_parse = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = rnd();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        buf_reset(&b);
        json_w_init(&w, &b);
        json_w_double(&w, v);
        double back;
        if (json_parse(b.data, b.len, toks, 8, 0, &d, &err) != 1 ||
            json_get_double(&d, 0, &back) || memcmp(&back, &v, sizeof v))
            bad_double++;
    }
    /* random strings drawn from ASCII, controls, valid multi-byte UTF-8 */
    static const char *pieces[] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\x01", "\x7f",
                                   "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x1f",
                                   "\xef\xbf\xbd", "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf",
                                   "0123456789abcdef"};
    char src[512];
    for (int i = 0; i < 5000; i++) {
        size_t n = 0;
        int parts = (int)(rnd() % 40);
        for (int k = 0; k < parts; k++) {
            const char *p = pieces[rnd() % (sizeof pieces / sizeof *pieces)];
            size_t pl = strlen(p);
            memcpy(src + n, p, pl);
            n += pl;
        }
        buf_reset(&b);
        json_w_init(&w, &b);
        json_w_arr_begin(&w);
        json_w_strn(&w, src, n);
        json_w_arr_end(&w);
        buf_reset(&u);
        if (json_parse(b.data, b.len, toks, 8, 0, &d, &err) != 2) {
            bad_parse++;
            continue;
        }
        if (json_str_unescape(&d, 1, &u) || u.len != n || memcmp(u.data, src, n))
            bad_str++;
        src[n] = '\0';
        if (!json_str_eq(&d, 1, src) && !memchr(src, 0, n))
            bad_str++;
    }
    /* random bytes: the writer's output always parses */
    for (int i = 0; i < 5000; i++) {
        size_t n = rnd() % 64;
        for (size_t k = 0; k < n; k++) src[k] = (char)rnd();
        buf_reset(&b);
        json_w_init(&w, &b);
        json_w_strn(&w, src, n);
        if (json_parse(b.data, b.len, toks, 8, 0, &d, &err) != 1)
            bad_parse++;
    }
    CHECK_EQ_INT(bad_double, 0);
    CHECK_EQ_INT(bad_str, 0);
    CHECK_EQ_INT(bad_parse, 0);
    buf_free(&b);
    buf_free(&u);
}

/* Every byte value as a single-byte string body, and the writer's nesting commas. */
static void test_bytes_and_commas(void) {
    json_doc_t d;
    size_t err;
    int wrong = 0;
    for (int c = 0; c < 256; c++) {
        char s[3] = {'"', (char)c, '"'};
        int rc = parse(s, 3, &d, &err);
        int want = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
        if (want ? rc != 1 : rc >= 0)
            wrong++;
    }
    CHECK_EQ_INT(wrong, 0);
    buf_t b;
    buf_init(&b);
    json_w_t w;
    json_w_init(&w, &b);
    json_w_arr_begin(&w);
    for (int i = 0; i < 3; i++) {
        json_w_obj_begin(&w);
        json_w_key(&w, "a");
        json_w_arr_begin(&w);
        json_w_i64(&w, i);
        json_w_i64(&w, -i);
        json_w_arr_end(&w);
        json_w_key(&w, "b");
        json_w_obj_begin(&w);
        json_w_obj_end(&w);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    CHECK_EQ_STR(b.data, "[{\"a\":[0,0],\"b\":{}},{\"a\":[1,-1],\"b\":{}},{\"a\":[2,-2],\"b\":{}}]");
    buf_free(&b);
}

/* The key/value helpers write what json_w_key + the value call write, commas included. */
static void test_writer_kv(void) {
    buf_t b;
    buf_init(&b);
    json_w_t w;
    json_w_init(&w, &b);
    json_w_obj_begin(&w);
    json_w_kv_str(&w, "s", "x\"y");
    json_w_kv_str(&w, "none", NULL);
    json_w_kv_i64(&w, "i", -42);
    json_w_kv_double(&w, "d", 0.5);
    json_w_kv_bool(&w, "t", 1);
    json_w_kv_null(&w, "n");
    json_w_kv_obj(&w, "o");
    json_w_kv_arr(&w, "a");
    json_w_i64(&w, 1);
    json_w_i64(&w, 2);
    json_w_arr_end(&w);
    json_w_kv_obj(&w, "e");
    json_w_obj_end(&w);
    json_w_obj_end(&w);
    json_w_kv_i64(&w, "last", 7);
    json_w_obj_end(&w);
    CHECK_EQ_STR(b.data, "{\"s\":\"x\\\"y\",\"none\":null,\"i\":-42,\"d\":0.5,\"t\":true,"
                         "\"n\":null,\"o\":{\"a\":[1,2],\"e\":{}},\"last\":7}");
    buf_free(&b);
}

/* Every token's source text, copied as it was written (escapes and spacing inside kept). */
static void test_append_src(void) {
    const char *s = "{\"k\\n\": [1, {\"b\" :  null}], \"s\": \"x\\u0041\", \"n\": -1.5e3, \"t\": true}";
    json_tok_t toks[16];
    json_doc_t d;
    size_t err;
    CHECK(json_parse(s, strlen(s), toks, 16, 0, &d, &err) > 0);
    const char *want[] = {NULL, "\"k\\n\"", "[1, {\"b\" :  null}]", "1", "{\"b\" :  null}", "\"b\"", "null",
                          "\"s\"", "\"x\\u0041\"", "\"n\"", "-1.5e3", "\"t\"", "true"};
    want[0] = s;
    CHECK_EQ_INT(d.ntoks, 13);
    for (uint32_t i = 0; i < d.ntoks && i < 13; i++) {
        buf_t b;
        buf_init(&b);
        CHECK_EQ_INT(json_append_src(&b, &d, (int)i), 0);
        CHECK_EQ_INT(b.len, strlen(want[i]));
        CHECK(b.len == strlen(want[i]) && !memcmp(b.data, want[i], b.len));
        buf_free(&b);
    }
}

int main(void) {
    test_append_src();
    test_valid();
    test_invalid();
    test_truncation();
    test_tokens();
    test_strings();
    test_numbers();
    test_depth();
    test_writer();
    test_roundtrip();
    test_writer_kv();
    test_bytes_and_commas();
    return check_summary("test_json");
}
