/*
 * cmd_tokenize.c — `kfchat tokenize`: print the token ids of a text, space separated, as the
 * llama.cpp vocabulary test vectors list them (--no-bos leaves the BOS token out).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_tokenize(int argc, char **argv)
{
    struct cli_common c;
    int no_bos = 0, special = 1, pieces = 0;
    const char *text = NULL;
    cli_common_init(&c);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(&c, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r)
            continue;
        if (strcmp(argv[i], "--no-bos") == 0)
            no_bos = 1;
        else if (strcmp(argv[i], "--no-parse-special") == 0)
            special = 0;
        else if (strcmp(argv[i], "--pieces") == 0)
            pieces = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            puts("usage: kfchat tokenize [-m MODEL] [--no-bos] [--no-parse-special] [--pieces] "
                 "[TEXT]\n  TEXT defaults to standard input.");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "kfchat: tokenize: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!text)
            text = argv[i];
        else {
            fprintf(stderr, "kfchat: tokenize: give the text as one argument (quote it)\n");
            return 2;
        }
    }
    char *owned = NULL;
    size_t len;
    if (!text) {
        owned = cli_read_all(stdin, &len);
        if (!owned) {
            fprintf(stderr, "kfchat: tokenize: cannot read standard input\n");
            return 1;
        }
        text = owned;
    } else
        len = strlen(text);
    struct engine *e = cli_open_engine(&c);
    if (!e) {
        free(owned);
        return 1;
    }
    int32_t *toks;
    int n, rc = 0;
    if (engine_tokenize(e, text, len, !no_bos, special, &toks, &n) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
        rc = 1;
    } else {
        char piece[256];
        for (int i = 0; i < n; i++) {
            if (pieces) {
                int k = engine_token_piece(e, toks[i], piece, sizeof piece - 1);
                piece[k > 0 ? k : 0] = 0;
                printf("%d '%s'\n", toks[i], piece);
            } else
                printf(i ? " %d" : "%d", toks[i]);
        }
        if (!pieces)
            putchar('\n');
        free(toks);
    }
    engine_close(e);
    free(owned);
    return rc;
}
