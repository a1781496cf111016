/*
 * cmd_generate.c — `kfchat generate`: complete a prompt (from -p, -f or standard input) and
 * stream the continuation to standard output.  Ctrl-C stops generation and keeps the output.
 * With --session NAME (or --resume ID) the prompt is instead one user turn of that saved chat
 * session, in the chat format, and the output its reply: a multi-line turn for scripts.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "session.h"

static void help(void)
{
    puts("usage: kfchat generate [options] [-p TEXT | -f FILE]   (else the prompt is read from "
         "standard input)\n"
         "  -p, --prompt TEXT     the prompt\n"
         "  -f, --file FILE       read the prompt from FILE\n"
         "  -n, --n-predict N     tokens to generate (default 256; -1 = until the context is "
         "full)\n"
         "      --ignore-eos      keep going past end-of-generation tokens\n"
         "      --session NAME    the prompt is the next user turn of saved chat session NAME\n"
         "                        (created if new); the reply is printed and saved\n"
         "      --resume ID       the same for session ID (or NAME, or 'last')");
    cli_common_help(stdout);
}

/* Sample and print up to n_predict tokens; returns the count generated or -1 on error. */
static int generate(struct engine *e, struct sampler *s, int n_predict, int ignore_eos)
{
    char piece[256];
    int n = 0;
    while (n_predict < 0 || n < n_predict) {
        if (cli_interrupted)
            break;
        int tok = sampler_sample(s, engine_logits(e), engine_n_vocab(e));
        sampler_accept(s, tok);
        if (!ignore_eos && engine_is_eog(e, tok))
            break;
        int k = engine_token_piece(e, tok, piece, sizeof piece);
        if (k > 0) {
            fwrite(piece, 1, (size_t)k, stdout);
            fflush(stdout);
        }
        n++;
        if (engine_n_past(e) >= engine_n_ctx(e))
            break;
        int32_t t = tok;
        int st = engine_eval(e, &t, 1, NULL, NULL, NULL);
        if (st) {
            fprintf(stderr, "\nkfchat: %s\n", engine_errmsg(e));
            return -1;
        }
    }
    return n;
}

static int print_piece(void *ud, const char *piece, int len, int32_t token)
{
    (void)ud, (void)token;
    if (len > 0) {
        fwrite(piece, 1, (size_t)len, stdout);
        fflush(stdout);
    }
    return 0;
}

/* --session: one chat turn in a saved session. */
static int generate_turn(struct cli_common *c, struct cli_session *o, const char *prompt)
{
    struct cli_chat ch;
    const volatile int *cancel = (const volatile int *)&cli_interrupted;
    int rc = cli_open_chat(&ch, c, o);
    if (rc)
        return rc;
    cli_catch_sigint();
    int st = session_user(ch.ss, prompt, cancel, NULL, NULL);
    if (st == STATUS_OK) {
        st = session_reply(ch.ss, print_piece, NULL, cancel);
        putchar('\n');
    }
    if (st != STATUS_OK && st != STATUS_STOPPED) {
        fprintf(stderr, "kfchat: %s\n", session_errmsg(ch.ss));
        rc = 1;
    } else if (c->verbose)
        fprintf(stderr, "kfchat: session %lld, prompt %.1f t/s, generation %.1f t/s\n",
                (long long)session_id(ch.ss), session_prompt_tps(ch.ss),
                session_gen_tps(ch.ss));
    cli_close_chat(&ch);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    struct cli_common c;
    struct cli_session so = { .n_predict = 256 };
    const char *prompt = NULL, *file = NULL;
    int n_predict = 256, ignore_eos = 0;
    cli_common_init(&c);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(&c, argc, argv, &i);
        if (!r)
            r = cli_session_opt(&so, argc, argv, &i);
        if (!r)
            r = cli_text_opt(argc, argv, &i, &prompt, &file);
        if (r < 0)
            return 2;
        if (r)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (cli_int(a, v, -1, 1 << 24, &n_predict))
                return 2;
            so.n_predict = n_predict;
            so.n_predict_set = 1;
            i++;
        } else if (!strcmp(a, "--ignore-eos"))
            ignore_eos = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else {
            fprintf(stderr, "kfchat: generate: unknown option '%s'\n", a);
            return 2;
        }
    }
    if ((so.name || so.resume) && ignore_eos) {
        fprintf(stderr, "kfchat: --ignore-eos cannot be used with --session or --resume\n");
        return 2;
    }
    char *owned = NULL;
    size_t len = 0;
    if (!prompt) {
        FILE *f = file ? fopen(file, "rb") : stdin;
        if (!f) {
            fprintf(stderr, "kfchat: cannot open %s\n", file);
            return 1;
        }
        owned = cli_read_all(f, &len);
        if (file)
            fclose(f);
        if (!owned) {
            fprintf(stderr, "kfchat: cannot read the prompt\n");
            return 1;
        }
        prompt = owned;
    } else
        len = strlen(prompt);
    if (so.name || so.resume) {
        int r = generate_turn(&c, &so, prompt);
        free(owned);
        return r;
    }
    int rc = 1;
    struct sampler *s = NULL;
    int32_t *toks = NULL;
    int n;
    struct engine *e = cli_open_engine(&c);
    if (!e)
        goto out;
    if (sampler_new(&s, &c.sp, engine_n_vocab(e)) != STATUS_OK) {
        fprintf(stderr, "kfchat: cannot create the sampler\n");
        goto out;
    }
    if (engine_tokenize(e, prompt, len, 1, 1, &toks, &n) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
        goto out;
    }
    if (n >= engine_n_ctx(e)) {
        fprintf(stderr, "kfchat: the prompt has %d tokens but the context holds %d (use -c)\n", n,
                engine_n_ctx(e));
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "kfchat: the prompt is empty and the model adds no BOS token\n");
        goto out;
    }
    for (int i = 0; i < n; i++)
        sampler_accept(s, toks[i]);
    cli_catch_sigint();
    double t0 = cli_now();
    int st = engine_eval(e, toks, n, (const volatile int *)&cli_interrupted, NULL, NULL);
    if (st && st != STATUS_STOPPED) {
        fprintf(stderr, "kfchat: %s\n", engine_errmsg(e));
        goto out;
    }
    double t1 = cli_now();
    int gen = st == STATUS_STOPPED ? 0 : generate(e, s, n_predict, ignore_eos);
    double t2 = cli_now();
    putchar('\n');
    if (gen < 0)
        goto out;
    if (c.verbose)
        fprintf(stderr, "kfchat: prompt %d tokens in %.2f s (%.1f t/s), generated %d tokens in "
                        "%.2f s (%.1f t/s), seed %llu\n",
                n, t1 - t0, n / (t1 - t0), gen, t2 - t1, gen > 0 ? gen / (t2 - t1) : 0.0,
                (unsigned long long)sampler_seed(s));
    rc = 0;
out:
    free(toks);
    sampler_free(s);
    engine_close(e);
    free(owned);
    return rc;
}
