/*
 * cmd_chat.c — `kfchat chat`, line mode: one user turn per input line, each reply streamed to
 * standard output.  Used directly when standard input is not a terminal (scripts, tests) and
 * until the full-screen UI lands.  Ctrl-C stops a reply and keeps what was generated; Ctrl-C
 * at an empty prompt twice in a row (or Ctrl-D, or /quit) leaves.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct chat {
    struct engine *e;
    struct sampler *s;
    struct chat_msg *msgs;
    size_t n, cap;
    int n_predict;
    int tty;
};

static int chat_add(struct chat *c, const char *role, const char *text, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct chat_msg *m = realloc(c->msgs, cap * sizeof(*m));
        if (!m)
            return -1;
        c->msgs = m;
        c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, len);
    copy[len] = 0;
    c->msgs[c->n].role = role;
    c->msgs[c->n].content = copy;
    c->n++;
    return 0;
}

/* Generate one reply into *out (malloc'd); returns a status. */
static int chat_reply(struct chat *c, char **out, size_t *out_len)
{
    size_t cap = 1024, n = 0;
    char *text = malloc(cap), piece[256];
    int st = STATUS_OK;
    if (!text)
        return STATUS_NOMEM;
    for (int i = 0; c->n_predict < 0 || i < c->n_predict; i++) {
        if (cli_interrupted) {
            st = STATUS_STOPPED;
            break;
        }
        int tok = sampler_sample(c->s, engine_logits(c->e), engine_n_vocab(c->e));
        sampler_accept(c->s, tok);
        if (engine_is_eog(c->e, tok))
            break;
        int k = engine_token_piece(c->e, tok, piece, sizeof piece);
        if (k > 0) {
            if (n + (size_t)k + 1 > cap) {
                char *nt = realloc(text, cap * 2 + (size_t)k);
                if (!nt) {
                    st = STATUS_NOMEM;
                    break;
                }
                text = nt;
                cap = cap * 2 + (size_t)k;
            }
            memcpy(text + n, piece, (size_t)k);
            n += (size_t)k;
            fwrite(piece, 1, (size_t)k, stdout);
            fflush(stdout);
        }
        int32_t t = tok;
        st = engine_eval(c->e, &t, 1, NULL, NULL, NULL);
        if (st)
            break;
    }
    text[n] = 0;
    *out = text;
    *out_len = n;
    return st;
}

static int chat_turn(struct chat *c, const char *line, size_t len)
{
    if (chat_add(c, "user", line, len))
        return STATUS_NOMEM;
    int st = engine_chat_push(c->e, c->msgs, c->n - 1, 1, NULL, NULL, NULL);
    if (st) {
        fprintf(stderr, "kfchat: %s\n", engine_errmsg(c->e));
        return st;
    }
    char *reply = NULL;
    size_t rlen = 0;
    st = chat_reply(c, &reply, &rlen);
    if (!reply)
        return st;
    putchar('\n');
    fflush(stdout);
    if (st == STATUS_CONTEXT_FULL)
        fprintf(stderr, "kfchat: %s\n", engine_errmsg(c->e));
    else if (st == STATUS_STOPPED && c->tty)
        fprintf(stderr, "[stopped]\n");
    cli_interrupted = 0;
    int add = chat_add(c, "assistant", reply, rlen);
    free(reply);
    if (add)
        return STATUS_NOMEM;
    if (st == STATUS_OK || st == STATUS_STOPPED) {
        int cst = engine_chat_close_reply(c->e);
        if (cst) {
            fprintf(stderr, "kfchat: %s\n", engine_errmsg(c->e));
            return cst;
        }
        return STATUS_OK;
    }
    return st;
}

static void help(void)
{
    puts("usage: kfchat [chat] [options]\n"
         "  Line-mode chat: type a message and press Enter; the reply streams back.\n"
         "  Ctrl-C stops a reply; Ctrl-C twice at an empty prompt, Ctrl-D or /quit leaves.\n"
         "      --system TEXT     system prompt\n"
         "  -n, --n-predict N     max tokens per reply (default 1024; -1 = no limit)");
    cli_common_help(stdout);
}

int cmd_chat(int argc, char **argv)
{
    struct cli_common cc;
    struct chat c = { .n_predict = 1024 };
    const char *system = NULL;
    cli_common_init(&cc);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(&cc, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--system") && v) {
            system = v;
            i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (cli_int(a, v, -1, 1 << 24, &c.n_predict))
                return 2;
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else {
            fprintf(stderr, "kfchat: chat: unknown option '%s'\n", a);
            return 2;
        }
    }
    c.tty = isatty(0) && isatty(1);
    c.e = cli_open_engine(&cc);
    if (!c.e)
        return 1;
    int rc = 1;
    if (sampler_new(&c.s, &cc.sp, engine_n_vocab(c.e)) != STATUS_OK) {
        fprintf(stderr, "kfchat: cannot create the sampler\n");
        goto out;
    }
    if (system) {
        if (chat_add(&c, "system", system, strlen(system)) ||
            engine_chat_push(c.e, c.msgs, 0, 0, NULL, NULL, NULL)) {
            fprintf(stderr, "kfchat: %s\n", engine_errmsg(c.e));
            goto out;
        }
    }
    cli_catch_sigint();
    char *line = NULL;
    size_t cap = 0;
    int interrupts = 0;
    for (;;) {
        if (c.tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t k = getline(&line, &cap, stdin);
        if (k < 0) {
            if (errno == EINTR && cli_interrupted && c.tty) {
                cli_interrupted = 0;
                clearerr(stdin);
                if (++interrupts >= 2)
                    break;
                fputs("\n(Ctrl-C again, Ctrl-D or /quit to leave)\n", stderr);
                continue;
            }
            break;
        }
        interrupts = 0;
        while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
            line[--k] = 0;
        if (k == 0)
            continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
            break;
        if (chat_turn(&c, line, (size_t)k) != STATUS_OK)
            goto out_line;
    }
    if (c.tty)
        putchar('\n');
    rc = 0;
out_line:
    free(line);
out:
    for (size_t i = 0; i < c.n; i++)
        free((char *)c.msgs[i].content);
    free(c.msgs);
    sampler_free(c.s);
    engine_close(c.e);
    return rc;
}
