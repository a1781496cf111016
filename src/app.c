/*
 * app.c — the TUI's UI thread: options, the event loop and the slash commands.
 *
 * One poll() waits on the terminal (standard input), the worker's wake pipe and a signal
 * self-pipe (SIGWINCH, SIGTSTP, SIGCONT, SIGINT, SIGTERM, SIGHUP).  Producers only mark things
 * dirty; the screen is drawn at one point per iteration, at most every FRAME_MS while tokens
 * stream, but a keystroke's echo (only the input line) is drawn at once — that keeps typing
 * responsive during generation.  Curses and readline are used through ui/ only.
 */
#include "config.h"
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app_impl.h"
#include "input.h"
#include "kvshade.h"
#include "paths.h"
#include "../data/store.h"
#include "term.h"
#include "view.h"

#define FRAME_MS 16
#define ESC_MS   25 /* how long a lone ESC waits for the rest of a sequence */

static int sig_fd[2] = { -1, -1 };

static void on_signal(int sig)
{
    int e = errno;
    unsigned char c = (unsigned char)sig;
    if (write(sig_fd[1], &c, 1) < 0) {
    }
    errno = e;
}

static void catch_signals(void)
{
    static const int sigs[] = { SIGWINCH, SIGTSTP, SIGCONT, SIGINT, SIGTERM, SIGHUP };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void app_note(struct app *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->note, sizeof a->note, fmt, ap);
    va_end(ap);
    a->note_until = cli_now() + 6;
    view_touch(a->v);
}

void app_notice(struct app *a, int role, const char *text)
{
    view_add(a->v, role, text, strlen(text));
    view_scroll_end(a->v);
}

static size_t read_rss(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

// ---- worker events ------------------------------------------------------------------------

int app_last_of(struct view *v, int role)
{
    for (int i = view_n_msgs(v) - 1; i >= 0; i--)
        if ((int)view_msg_role(v, i) == role)
            return i;
    return -1;
}

static void apply_kv(struct app *a, const struct kv_snap *s)
{
    struct kvshade *ks = view_kvshade(a->v);
    if (!ks || kvshade_n_layer(ks) != s->n_layer)
        ks = view_kv_reset(a->v, s->n_layer);
    if (!ks || kvshade_begin(ks, s->n_past) != 0)
        return;
    for (int i = 0; i < s->n_layer * s->n_head_kv; i++)
        kvshade_add_trace(ks, i / s->n_head_kv, s->pos + s->off[i], s->score + s->off[i],
                          s->flags + s->off[i], s->count[i]);
    view_touch(a->v);
}

static void handle_event(struct app *a, struct ev *e)
{
    switch (e->kind) {
    case EV_LOADED:
        a->loaded = 1;
        a->stats = e->stats;
        view_kv_reset(a->v, e->stats.n_layer > 0 ? e->stats.n_layer : 1);
        break;
    case EV_PROGRESS:
        a->progress = e->total > 0 ? (double)e->done / e->total : 0;
        a->state = "reading";
        break;
    case EV_CLEAR:
        view_truncate(a->v, 0);
        break;
    case EV_MSG:
        if (e->role == -1) { /* spans of the last user message */
            int i = app_last_of(a->v, VIEW_USER);
            view_set_tokens(a->v, i, e->toff, e->tpos, e->ntok);
        } else {
            int i = view_add(a->v, e->role, e->text, e->len);
            view_set_tokens(a->v, i, e->toff, e->tpos, e->ntok);
            if (e->role == VIEW_ASSISTANT) {
                a->state = "generating";
                a->progress = -1;
            }
        }
        break;
    case EV_PIECE:
        view_append(a->v, app_last_of(a->v, VIEW_ASSISTANT), e->text, e->len, e->pos);
        break;
    case EV_KV:
        apply_kv(a, e->kv);
        break;
    case EV_STATS:
        a->stats = e->stats;
        break;
    case EV_DONE:
        a->stats = e->stats;
        a->progress = -1;
        a->state = a->loaded ? "ready" : "no model";
        if (e->status == STATUS_STOPPED)
            app_note(a, "%s", "stopped");
        break;
    case EV_NOTE:
        app_notice(a, VIEW_NOTICE, e->text ? e->text : "");
        break;
    case EV_ERROR:
        app_notice(a, VIEW_ERROR, e->text ? e->text : "");
        break;
    }
    view_touch(a->v);
}

static void drain_worker(struct app *a)
{
    char buf[256];
    while (read(a->w.wake_fd[0], buf, sizeof buf) > 0) {
    }
    for (struct ev *e = worker_take(&a->w), *nx; e; e = nx) {
        nx = e->next;
        handle_event(a, e);
        ev_free(e);
    }
}

// ---- keys ---------------------------------------------------------------------------------

static void ctrl_c(struct app *a)
{
    if (a->w.busy) {
        a->w.cancel = 1; /* the worker stops at the next token and keeps the text */
        app_note(a, "%s", "stopping");
    } else if (a->pane != PANE_NONE) {
        app_pane_close(a);
    } else if (!input_empty()) {
        input_clear();
    } else if (a->ctrl_c_armed) {
        a->quit = 1;
    } else {
        a->ctrl_c_armed = 1;
        app_note(a, "%s", "Ctrl-C again to quit");
        return;
    }
    a->ctrl_c_armed = 0;
}

/* An application key; returns 0 when the bytes should go to readline instead. */
static int app_key(struct app *a, int key, const char *seq, size_t n)
{
    if (view_help_on(a->v) && key != INPUT_KEY_PASTE_BEGIN) {
        view_help(a->v, 0); /* any key closes the help screen */
        return 1;
    }
    if (key != INPUT_KEY_CTRL_C)
        a->ctrl_c_armed = 0;
    if (a->pane != PANE_NONE && key == INPUT_KEY_NONE && n == 3 && seq[0] == 0x1b &&
        (seq[2] == 'A' || seq[2] == 'B')) {
        a->pane_sel += seq[2] == 'A' ? -1 : 1;
        if (a->pane_sel < 0)
            a->pane_sel = 0;
        if (a->pane_sel >= a->pane_n)
            a->pane_sel = a->pane_n > 0 ? a->pane_n - 1 : 0;
        app_pane_fill(a, a->pane_filter);
        return 1;
    }
    switch (key) {
    case INPUT_KEY_NONE: return 0;
    case INPUT_KEY_CTRL_C: ctrl_c(a); break;
    case INPUT_KEY_ESC:
        if (a->w.busy)
            ctrl_c(a);
        else if (a->pane != PANE_NONE)
            app_pane_close(a);
        break;
    case INPUT_KEY_CTRL_Z: term_suspend(); break;
    case INPUT_KEY_CTRL_L: term_reinit(); break;
    case INPUT_KEY_F1: view_help(a->v, 1); break;
    case INPUT_KEY_F2:
        view_kv_toggle(a->v);
        a->w.want_kv = view_kv_on(a->v);
        if (a->w.want_kv && !a->w.busy)
            worker_post(&a->w, JOB_KV, NULL, 0);
        break;
    case INPUT_KEY_F3: view_kv_layer(a->v, -1); break;
    case INPUT_KEY_F4: view_kv_layer(a->v, 1); break;
    case INPUT_KEY_PGUP: view_page(a->v, -1); break;
    case INPUT_KEY_PGDN: view_page(a->v, 1); break;
    case INPUT_KEY_S_LEFT: view_kv_cursor(a->v, -1); break;
    case INPUT_KEY_S_RIGHT: view_kv_cursor(a->v, 1); break;
    case INPUT_KEY_S_UP: view_kv_cursor(a->v, -8); break;
    case INPUT_KEY_S_DOWN: view_kv_cursor(a->v, 8); break;
    case INPUT_KEY_S_HOME: view_kv_cursor(a->v, INT_MIN); break;
    case INPUT_KEY_S_END: view_kv_cursor(a->v, INT_MAX); break;
    case INPUT_KEY_PASTE_BEGIN: a->in_paste = 1; break;
    case INPUT_KEY_PASTE_END: break;
    default: break;
    }
    view_touch(a->v);
    return 1;
}

/* Process buffered terminal bytes; flush: no more are coming (a lone ESC is Esc). */
static void process_keys(struct app *a, int flush)
{
    size_t i = 0;
    while (i < a->klen) {
        if (a->in_paste) { /* literal text up to ESC [ 201 ~ */
            static const char end[] = "\033[201~";
            char *p = memmem(a->kbuf + i, a->klen - i, end, 6);
            size_t take = p ? (size_t)(p - (a->kbuf + i)) : a->klen - i;
            if (!p && !flush)
                take = take > 5 ? take - 5 : 0; /* the end marker may be cut */
            if (take > 0)
                input_insert(a->kbuf + i, take);
            i += take;
            if (p) {
                i += 6;
                a->in_paste = 0;
            } else if (take == 0) {
                break;
            }
            continue;
        }
        int key;
        size_t n = flush ? input_decode_flush(a->kbuf + i, a->klen - i, &key)
                         : input_decode(a->kbuf + i, a->klen - i, &key);
        if (n == 0)
            break; /* an escape sequence may go on: wait ESC_MS for the rest */
        if (!app_key(a, key, a->kbuf + i, n)) {
            input_feed(a->kbuf + i, n);
            char *l;
            while ((l = input_take_line())) {
                app_on_line(a, l);
                free(l);
            }
            if (input_take_eof() && !a->w.busy)
                a->quit = 1; /* Ctrl-D on an empty line */
        }
        i += n;
    }
    memmove(a->kbuf, a->kbuf + i, a->klen - i);
    a->klen -= i;
    if (a->pane == PANE_SESSIONS) { /* the input line is the pane's filter */
        size_t n;
        const char *t = input_text(&n);
        if (n < sizeof a->pane_filter && (strlen(a->pane_filter) != n ||
                                          memcmp(a->pane_filter, t, n) != 0)) {
            memcpy(a->pane_filter, t, n);
            a->pane_filter[n] = 0;
            a->pane_sel = 0;
            app_pane_fill(a, a->pane_filter);
        }
    }
}

static void handle_signal(struct app *a, int sig)
{
    switch (sig) {
    case SIGWINCH: term_resize(); break;
    case SIGTSTP: term_suspend(); break;
    case SIGCONT: term_reinit(); break;
    case SIGINT: ctrl_c(a); break;
    default: a->quit = 1; break;
    }
    view_touch(a->v);
}

// ---- the loop -----------------------------------------------------------------------------

static void draw(struct app *a, double now)
{
    struct view_status s = { 0 };
    s.model = a->stats.model[0] ? a->stats.model : NULL;
    s.policy = a->stats.policy[0] ? a->stats.policy : NULL;
    s.state = a->state;
    s.kv_budget = a->stats.kv_budget;
    s.kv_used = a->stats.kv_used;
    s.kv_full = a->stats.kv_full;
    s.kv_budget_bytes = a->stats.kv_bytes;
    s.n_past = a->stats.n_past;
    s.n_ctx = a->stats.n_ctx;
    s.prompt_tps = a->stats.prompt_tps;
    s.gen_tps = a->stats.gen_tps;
    s.rss = a->rss;
    s.progress = a->progress;
    static double t_load = -1; /* the first frame of this load (at start, or /policy's reopen) */
    if (!a->loaded && a->progress < 0 && a->state && !strcmp(a->state, "loading")) {
        if (t_load < 0)
            t_load = now;
        double t = now - t_load; /* no progress from engine_open: an easing bar from 0 */
        s.progress = t / (t + 1.0);
    } else {
        t_load = -1;
    }
    s.note = now < a->note_until ? a->note : NULL;
    view_set_status(a->v, &s);
    view_draw(a->v);
    double t = cli_now();
    if (a->bench) {
        for (int i = 0; i < a->n_key_t; i++) {
            if (a->n_lat == a->cap_lat) {
                a->cap_lat = a->cap_lat ? a->cap_lat * 2 : 1024;
                a->lat = realloc(a->lat, a->cap_lat * sizeof *a->lat);
            }
            if (a->lat)
                a->lat[a->n_lat++] = t - a->key_t[i];
        }
        if (!a->first_frame)
            fprintf(a->bench, "first_frame_ms %.2f\n", (t - a->t_start) * 1e3);
    }
    a->n_key_t = 0;
    a->first_frame = 1;
}

static int cmp_dbl(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void bench_report(struct app *a)
{
    if (!a->bench)
        return;
    if (a->n_lat > 0) {
        qsort(a->lat, a->n_lat, sizeof *a->lat, cmp_dbl);
        fprintf(a->bench, "keys %zu p50_ms %.3f p99_ms %.3f max_ms %.3f\n", a->n_lat,
                a->lat[a->n_lat / 2] * 1e3, a->lat[(a->n_lat * 99) / 100] * 1e3,
                a->lat[a->n_lat - 1] * 1e3);
    }
    fclose(a->bench);
    free(a->lat);
}

static int loop_timeout(struct app *a, double now)
{
    if (a->klen > 0)
        return ESC_MS;
    if (view_dirty(a->v)) {
        int ms = (int)(FRAME_MS - (now - a->t_draw) * 1e3);
        return ms > 0 ? ms : 0;
    }
    if (!a->loaded || a->w.busy)
        return 100;
    return 1000;
}

static void run_loop(struct app *a)
{
    struct pollfd fds[3] = {
        { .fd = STDIN_FILENO, .events = POLLIN },
        { .fd = a->w.wake_fd[0], .events = POLLIN },
        { .fd = sig_fd[0], .events = POLLIN },
    };
    while (!a->quit) {
        double now = cli_now();
        int r = poll(fds, 3, loop_timeout(a, now));
        now = cli_now();
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && (fds[2].revents & POLLIN)) {
            unsigned char sigs[16];
            ssize_t k = read(sig_fd[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < k; i++)
                handle_signal(a, sigs[i]);
        }
        if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
            ssize_t k = read(STDIN_FILENO, a->kbuf + a->klen, sizeof a->kbuf - a->klen);
            if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
                break; /* the terminal went away */
            if (k > 0) {
                a->klen += (size_t)k;
                if (a->bench && a->n_key_t < 256)
                    a->key_t[a->n_key_t++] = now;
                process_keys(a, 0);
            }
        } else if (a->klen > 0) {
            process_keys(a, 1); /* ESC_MS passed with no more bytes */
        }
        if (r > 0 && (fds[1].revents & POLLIN))
            drain_worker(a);
        if (now - a->t_rss > 1.0) {
            a->rss = read_rss();
            a->t_rss = now;
            view_touch(a->v);
        }
        if (!a->loaded || a->w.busy || (a->note_until > 0 && now > a->note_until)) {
            if (a->note_until > 0 && now > a->note_until)
                a->note_until = 0;
            if (now - a->t_draw > 0.1)
                view_touch(a->v); /* animate progress and the live rates */
        }
        /* a keystroke is echoed at once; streamed text at most every FRAME_MS */
        if (input_dirty() || (view_dirty(a->v) && (now - a->t_draw) * 1e3 >= FRAME_MS)) {
            draw(a, now);
            a->t_draw = now;
        }
    }
}

// ---- entry --------------------------------------------------------------------------------

static void usage(void)
{
    puts("usage: kfchat [chat] [options]\n"
         "  Full-screen chat (when standard input and output are a terminal; --plain for the\n"
         "  line mode).  F1 in the chat lists the keys and commands.\n"
         "      --system TEXT     system prompt of a new session\n"
         "      --session NAME    continue the session of this name (or create it)\n"
         "      --resume ID       continue session ID\n"
         "  -n, --n-predict N     max tokens per reply (default 1024; -1 = no limit)\n"
         "      --plain           line mode even on a terminal");
    cli_common_help(stdout);
}

static int parse_args(struct app *a, int argc, char **argv)
{
    struct worker *w = &a->w;
    cli_common_init(&w->cc);
    w->n_predict = 1024;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(&w->cc, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r)
            continue;
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--plain"))
            continue;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            return 1;
        }
        if (!strcmp(o, "-n") || !strcmp(o, "--n-predict")) {
            if (cli_int(o, v, -1, 1 << 24, &w->n_predict))
                return 2;
        } else if (!v) {
            fprintf(stderr, "kfchat: chat: unknown option or missing value '%s'\n", o);
            return 2;
        } else if (!strcmp(o, "--system")) {
            w->system = strdup(v);
        } else if (!strcmp(o, "--session")) {
            w->session_name = strdup(v);
        } else if (!strcmp(o, "--resume")) {
            if (!(w->resume_id = app_parse_id(v))) {
                fprintf(stderr, "kfchat: --resume needs a session id (got '%s')\n", v);
                return 2;
            }
        } else if (!strcmp(o, "--bench-keys")) { /* hidden: latency log for bench_tui.sh */
            a->bench = fopen(v, "w");
        } else {
            fprintf(stderr, "kfchat: chat: unknown option '%s'\n", o);
            return 2;
        }
        i++;
    }
    if (w->cc.kv_budget)
        w->kv_budget = strdup(w->cc.kv_budget);
    return 0;
}

int app_main(int argc, char **argv)
{
    static struct app app; /* large (key buffer); one per process */
    struct app *a = &app;
    char dir[4096], hist[4200], err[256];
    a->t_start = cli_now();
    a->progress = -1;
    a->state = "loading";
    int rc = parse_args(a, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (paths_data_dir(dir, sizeof dir) == STATUS_OK && paths_mkdir_p(dir, 0700) == STATUS_OK) {
        snprintf(hist, sizeof hist, "%s/history", dir);
        snprintf(a->w.db_path, sizeof a->w.db_path, "%s/kfchat.db", dir);
    } else {
        hist[0] = 0;
    }
    if (pipe(sig_fd) || pipe(a->w.wake_fd)) {
        perror("kfchat: pipe");
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(sig_fd[i], F_SETFL, O_NONBLOCK);
        fcntl(a->w.wake_fd[i], F_SETFL, O_NONBLOCK);
        fcntl(sig_fd[i], F_SETFD, FD_CLOEXEC);
        fcntl(a->w.wake_fd[i], F_SETFD, FD_CLOEXEC);
    }
    if (!(a->v = view_new()) || term_open() != 0) {
        fprintf(stderr, "kfchat: cannot start the terminal UI (try --plain)\n");
        return 1;
    }
    catch_signals(); /* after initscr: ours replace curses' SIGWINCH/SIGTSTP handlers */
    if (input_open(hist[0] ? hist : NULL, err, sizeof err) != 0) {
        term_close();
        fprintf(stderr, "kfchat: %s\n", err);
        return 1;
    }
    draw(a, a->t_start); /* a usable prompt before the model is loaded */
    if (worker_start(&a->w) != 0) {
        input_close();
        term_close();
        fprintf(stderr, "kfchat: cannot start the engine thread\n");
        return 1;
    }
    worker_post(&a->w, JOB_OPEN, NULL, 0);
    run_loop(a);
    worker_stop(&a->w);
    input_close();
    term_close();
    app_pane_close(a);
    view_free(a->v);
    store_close(a->st);
    bench_report(a);
    free(a->w.kv_budget);
    free(a->w.system);
    free(a->w.session_name);
    return 0;
}
