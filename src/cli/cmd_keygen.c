/* cmd_keygen.c — `tollgate keygen`: a new random API key and the hash that goes in the config. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "gateway/keys.h"

static void usage(FILE *out) {
    fprintf(out, "usage: tollgate keygen [--hash KEY]\n"
                 "\n"
                 "Prints a new random API key (32 bytes from getrandom(), base64url, prefix tg-)\n"
                 "and its hash. Give the key to the calling service; put only the hash in the\n"
                 "gateway config, under services.NAME.keys:\n"
                 "\n"
                 "  key:  tg-...\n"
                 "  hash: sha256:...\n"
                 "\n"
                 "  --hash KEY   print the hash of an existing key instead\n"
                 "  --help       this text\n");
}

int cmd_keygen(int argc, char **argv) {
    char key[KEYS_KEY_TEXT], hash[KEYS_HASH_TEXT];
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--hash")) {
        uint8_t h[KEYS_HASH_LEN];
        keys_sha256(argv[2], strlen(argv[2]), h);
        keys_format_hash(h, hash);
        printf("hash: %s\n", hash);
        return 0;
    }
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    int rc = keys_generate(key, hash);
    if (rc < 0) {
        fprintf(stderr, "tollgate keygen: no random bytes from the kernel: %s\n", strerror(-rc));
        return 1;
    }
    printf("key:  %s\nhash: %s\n", key, hash);
    return 0;
}
