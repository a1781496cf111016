/*
 * cmd_chat.c — `kfchat chat` in line mode (standard input not a terminal, or --plain): one user
 * turn per input line, each reply streamed to standard output and ended by a newline, on top
 * of session.c.  Scripts and tests use it; so does a terminal without the full-screen UI, with
 * a "> " prompt.  Ctrl-C stops a reply and keeps what was generated; Ctrl-C twice at an empty
 * prompt, Ctrl-D or /quit leaves.  A few slash commands (/help) act on the session; any other
 * line, including one starting with "//" (sent as "/..."), is a user turn.
 *
 * Saving: with --session or --resume every turn is committed to the session database as it
 * ends, with a snapshot for exact resume.  Without them an interactive chat is saved as an
 * unnamed session and a piped one is not (scripts do not fill the session list), unless
 * --no-save or --session says otherwise.
 *
 * Headless: `kfchat -p TEXT` (or -f FILE, - for standard input, or both: TEXT, a blank line,
 * then the file) is one user turn, answered on standard output, and the program ends, on a
 * terminal too (main.c sends it here instead of the full-screen UI).  It is saved only into a
 * session named by --session or --resume.  Exit status 0, 1 on an error, 130 when Ctrl-C
 * stopped the reply.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "session.h"

struct line_chat {
    struct cli_chat ch;
    struct cli_common cc;
    struct cli_session o;
    int tty;
    const char *prompt, *file; /* headless: -p, -f */
};

static const volatile int *cancel_flag(void)
{
    return (const volatile int *)&cli_interrupted;
}

static int on_piece(void *ud, const char *piece, int len, int32_t token)
{
    (void)ud, (void)token;
    if (len > 0) {
        fwrite(piece, 1, (size_t)len, stdout);
        fflush(stdout);
    }
    return 0;
}

/* The session's error in one line; a full context says how a chat can run longer. */
static void print_error(const struct line_chat *lc, int st)
{
    int to = st == STATUS_CONTEXT_FULL ? cli_budget_ctx(&lc->cc, lc->cc.kv_budget, lc->ch.e) : 0;
    if (to)
        fprintf(stderr, "kfchat: %s; with --kv-budget N (tokens) a new chat runs to the "
                "model's %d\n", session_errmsg(lc->ch.ss), to);
    else
        fprintf(stderr, "kfchat: %s\n", session_errmsg(lc->ch.ss));
}

/* After a session call: report st; returns nonzero when the chat must end (exit status 1).
 * A full context ends a script but not an interactive chat, where the user may /fork or leave. */
static int report(struct line_chat *lc, int st)
{
    if (st == STATUS_STOPPED) {
        if (lc->tty)
            fputs("[stopped]\n", stderr);
        cli_interrupted = 0;
        return 0;
    }
    if (st == STATUS_OK)
        return 0;
    print_error(lc, st);
    return st < 0 || !lc->tty;
}

/* A reply to the last user turn has been streamed (or stopped): end its line. */
static int end_reply(struct line_chat *lc, int st)
{
    putchar('\n');
    fflush(stdout);
    return report(lc, st);
}

static int turn(struct line_chat *lc, const char *text)
{
    int st = session_user(lc->ch.ss, text, cancel_flag(), NULL, NULL);
    if (st != STATUS_OK)
        return report(lc, st);
    return end_reply(lc, session_reply(lc->ch.ss, on_piece, NULL, cancel_flag()));
}

/* The headless turn's text from -p and -f (malloc'd; NULL after a one-line error). */
static char *one_shot_text(const struct line_chat *lc)
{
    char *body = NULL, *msg;
    size_t blen = 0, pl = lc->prompt ? strlen(lc->prompt) : 0;
    if (lc->file) {
        const int std_in = !strcmp(lc->file, "-");
        FILE *f = std_in ? stdin : fopen(lc->file, "rb");
        if (!f) {
            fprintf(stderr, "kfchat: cannot open %s: %s\n", lc->file, strerror(errno));
            return NULL;
        }
        body = cli_read_all(f, &blen);
        if (!std_in)
            fclose(f);
        if (!body) {
            fprintf(stderr, "kfchat: cannot read %s\n", lc->file);
            return NULL;
        }
        while (blen > 0 && (body[blen - 1] == '\n' || body[blen - 1] == '\r'))
            body[--blen] = 0; /* as a line of piped input loses its end */
    }
    if (!(msg = malloc(pl + 2 + blen + 1))) {
        free(body);
        fputs("kfchat: out of memory\n", stderr);
        return NULL;
    }
    memcpy(msg, lc->prompt ? lc->prompt : "", pl);
    size_t n = pl;
    if (pl && blen) {
        memcpy(msg + n, "\n\n", 2);
        n += 2;
    }
    memcpy(msg + n, body ? body : "", blen);
    msg[n + blen] = 0;
    free(body);
    if (!msg[0]) {
        fputs("kfchat: the message is empty (-p TEXT or -f FILE)\n", stderr);
        free(msg);
        return NULL;
    }
    return msg;
}

/* The headless turn answered: the status to exit with. */
static int one_shot(struct line_chat *lc, const char *text)
{
    int st = session_user(lc->ch.ss, text, cancel_flag(), NULL, NULL);
    if (st == STATUS_OK) {
        st = session_reply(lc->ch.ss, on_piece, NULL, cancel_flag());
        putchar('\n');
        fflush(stdout);
    }
    if (st == STATUS_STOPPED)
        return 130;
    if (st != STATUS_OK) {
        print_error(lc, st);
        return 1;
    }
    return 0;
}

static void commands_help(void)
{
    fputs("  /regen          answer the last message again (a new branch)\n"
          "  /edit TEXT      replace the last message by TEXT and answer it (a new branch)\n"
          "  /fork [NAME]    continue in a copy of this session\n"
          "  /rename NAME    name this session\n"
          "  /resume ID      switch to saved session ID (or NAME, or 'last')\n"
          "  /quit           leave (also /exit, Ctrl-D)\n"
          "  //TEXT          send /TEXT\n", stderr);
}

/* A slash command; returns -1 if line is not one, else as report(). */
static int command(struct line_chat *lc, const char *line)
{
    const char *arg = strchr(line, ' ');
    size_t n = arg ? (size_t)(arg - line) : strlen(line);
    arg = arg ? arg + strspn(arg, " ") : "";
    struct session *ss = lc->ch.ss;
#define IS(name) (n == strlen(name) && !strncmp(line, name, n))
    if (IS("/help")) {
        commands_help();
        return 0;
    }
    if (IS("/regen"))
        return end_reply(lc, session_regen(ss, on_piece, NULL, cancel_flag()));
    if (IS("/edit") && *arg)
        return end_reply(lc, session_edit_last(ss, arg, on_piece, NULL, cancel_flag()));
    if (IS("/fork"))
        return report(lc, session_fork(ss, *arg ? arg : NULL)) ||
               (fprintf(stderr, "[session %lld]\n", (long long)session_id(ss)), 0);
    if (IS("/rename") && *arg)
        return report(lc, session_rename(ss, arg));
    if (IS("/resume") && *arg) {
        if (!lc->ch.st) {
            fputs("kfchat: /resume needs the session database (this chat is not saved)\n",
                  stderr);
            return !lc->tty;
        }
        int rc = cli_chat_resume(&lc->ch, &lc->cc, &lc->o, arg);
        if (rc == 0 && lc->tty)
            fprintf(stderr, "[session %lld: %zu messages]\n", (long long)session_id(lc->ch.ss),
                    session_n_msgs(lc->ch.ss));
        return rc < 0 || (rc > 0 && !lc->tty);
    }
#undef IS
    return -1;
}

static void help(void)
{
    puts("usage: kfchat chat [options]   (--plain: line mode on a terminal too)\n"
         "       kfchat [chat] -p TEXT [-f FILE] [options]   one question, answered, then exit\n"
         "  Line mode: each input line is a user turn; each reply is printed on its own line.\n"
         "  Ctrl-C stops a reply; Ctrl-C twice at an empty prompt, Ctrl-D or /quit leaves;\n"
         "  /help lists the commands.\n"
         "  -p, --prompt TEXT     headless: TEXT is the one user turn (not saved unless\n"
         "                        --session or --resume names the session)\n"
         "  -f, --file FILE       headless: the turn is FILE's text (after TEXT and a blank\n"
         "                        line; - reads standard input)\n"
         "      --system TEXT     system prompt of a new session\n"
         "  -n, --n-predict N     max tokens per reply (default 1024; -1 = no limit)");
    cli_session_help(stdout);
    cli_common_help(stdout);
}

static int parse(struct line_chat *lc, int argc, char **argv)
{
    cli_common_init(&lc->cc);
    lc->o.n_predict = 1024;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(&lc->cc, argc, argv, &i);
        if (!r)
            r = cli_session_opt(&lc->o, argc, argv, &i);
        if (!r)
            r = cli_text_opt(argc, argv, &i, &lc->prompt, &lc->file);
        if (r < 0)
            return 2;
        if (r)
            continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--system") && v) {
            lc->o.system = v;
            i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (cli_int(a, v, -1, 1 << 24, &lc->o.n_predict))
                return 2;
            lc->o.n_predict_set = 1;
            i++;
        } else if (!strcmp(a, "--plain"))
            continue;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 1;
        } else {
            fprintf(stderr, "kfchat: chat: unknown option '%s'\n", a);
            return 2;
        }
    }
    return 0;
}

/* Read one line into *line without its end; -1 at the end of input, -2 for a Ctrl-C. */
static ssize_t read_line(struct line_chat *lc, char **line, size_t *cap)
{
    if (lc->tty) {
        fputs("> ", stdout);
        fflush(stdout);
    }
    errno = 0;
    ssize_t k = getline(line, cap, stdin);
    if (k < 0) {
        if (errno == EINTR && cli_interrupted && lc->tty) {
            cli_interrupted = 0;
            clearerr(stdin);
            return -2;
        }
        return -1;
    }
    while (k > 0 && ((*line)[k - 1] == '\n' || (*line)[k - 1] == '\r'))
        (*line)[--k] = 0;
    return k;
}

int cmd_chat(int argc, char **argv)
{
    static struct line_chat lc;
    int rc = parse(&lc, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    char *text = NULL; /* headless: read before the model loads, so a bad file fails at once */
    if ((lc.prompt || lc.file) && !(text = one_shot_text(&lc)))
        return lc.file ? 1 : 2;
    lc.tty = !text && isatty(0) && isatty(1);
    lc.o.save = !text && isatty(0);
    if ((rc = cli_open_chat(&lc.ch, &lc.cc, &lc.o)) != 0) {
        free(text);
        return rc;
    }
    if (text) {
        cli_catch_sigint();
        rc = one_shot(&lc, text);
        free(text);
        cli_close_chat(&lc.ch);
        return rc;
    }
    if (lc.tty && session_n_msgs(lc.ch.ss) && session_id(lc.ch.ss))
        fprintf(stderr, "[session %lld: %zu messages]\n", (long long)session_id(lc.ch.ss),
                session_n_msgs(lc.ch.ss));
    cli_catch_sigint();
    char *line = NULL;
    size_t cap = 0;
    int interrupts = 0;
    for (;;) {
        ssize_t k = read_line(&lc, &line, &cap);
        if (k == -2) {
            if (++interrupts >= 2)
                break;
            fputs("\n(Ctrl-C again, Ctrl-D or /quit to leave)\n", stderr);
            continue;
        }
        if (k < 0)
            break;
        interrupts = 0;
        if (k == 0)
            continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
            break;
        int r = line[0] == '/' && line[1] != '/' ? command(&lc, line) : -1;
        if (r < 0)
            r = turn(&lc, line[0] == '/' && line[1] == '/' ? line + 1 : line);
        if (r) {
            rc = 1;
            break;
        }
    }
    if (lc.tty && rc == 0)
        putchar('\n');
    free(line);
    cli_close_chat(&lc.ch);
    return rc;
}
