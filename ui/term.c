/*
 * term.c — ncurses set-up, attributes, suspend/resize and the terminal-restore hook (see term.h).
 *
 * Invariant: while term_open() is in effect the terminal is in curses' program mode, raw, with
 * bracketed paste on; every path out of the program (return, exit, crash signal, Ctrl-Z) goes
 * through term_restore(), which leaves shell mode with the paste mode off again.
 */
#include "config.h"
#include "term.h"

#include <curses.h>
#include <langinfo.h>
#include <pthread.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define PASTE_ON  "\033[?2004h"
#define PASTE_OFF "\033[?2004l"

static volatile sig_atomic_t term_open_flag;
static int term_ncolors;
static int term_ascii_flag;
static unsigned char pair_ready[128];

static void put_raw(const char *s)
{
    /* write(2), not stdio: this also runs in signal handlers */
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t k = write(STDOUT_FILENO, s, n);
        if (k <= 0)
            break;
        s += k;
        n -= (size_t)k;
    }
}

void term_restore(void)
{
    if (!term_open_flag)
        return;
    term_open_flag = 0;
    /* endwin is not async-signal-safe, but it only restores saved termios and writes a few
     * bytes; the alternative — a crashed program leaving a raw, invisible-cursor tty — is
     * worse (htop does the same) */
    endwin();
    put_raw(PASTE_OFF);
}

static void on_crash(int sig)
{
    term_restore();
    /* SA_RESETHAND restored the default action: die of the same signal (and dump core) */
    raise(sig);
}

static void install_crash_handlers(void)
{
    static const int sigs[] = { SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = (int)SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

static void set_modes(void)
{
    raw(); /* Ctrl-C, Ctrl-Z, Ctrl-S arrive as bytes: the application decides what they do */
    noecho();
    nonl(); /* Enter reads as \r, Ctrl-J as \n: they do different things */
    intrflush(stdscr, FALSE);
    leaveok(stdscr, FALSE);
    curs_set(1);
}

int term_open(void)
{
    static int atexit_done;
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    term_ascii_flag = !(cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0));
    if (!initscr())
        return -1;
    term_open_flag = 1;
    if (!atexit_done) {
        atexit(term_close);
        atexit_done = 1;
    }
    install_crash_handlers();
    set_modes();
    int colors = 0;
    if (has_colors() && start_color() == OK) {
        use_default_colors();
        colors = COLORS;
        if (COLOR_PAIRS < 82)
            colors = 0; /* not enough pairs for our 9×9 scheme: attributes only */
    }
    term_ncolors = ui_style_use_colors(getenv("NO_COLOR"), colors) ? colors : 0;
    memset(pair_ready, 0, sizeof pair_ready);
    put_raw(PASTE_ON);
    return 0;
}

void term_close(void)
{
    term_restore();
}

int term_is_open(void)
{
    return term_open_flag;
}

int term_colors(void)
{
    return term_ncolors;
}

int term_ascii(void)
{
    return term_ascii_flag;
}

unsigned long term_attr(enum ui_style style, unsigned flags)
{
    struct ui_look lk = ui_style_look(style, flags, term_ncolors > 0);
    attr_t a = A_NORMAL;
    if (lk.attrs & UI_ATTR_BOLD)
        a |= A_BOLD;
    if (lk.attrs & UI_ATTR_DIM)
        a |= A_DIM;
    if (lk.attrs & UI_ATTR_UNDERLINE)
        a |= A_UNDERLINE;
    if (lk.attrs & UI_ATTR_REVERSE)
        a |= A_REVERSE;
#ifdef A_ITALIC
    if (lk.attrs & UI_ATTR_ITALIC)
        a |= A_ITALIC;
#endif
    if (term_ncolors > 0 && (lk.fg != UI_COLOR_DEFAULT || lk.bg != UI_COLOR_DEFAULT)) {
        /* one pair per (fg, bg) of the nine "colours" (default + 8), made on first use */
        int pair = 1 + (lk.fg + 1) + 9 * (lk.bg + 1);
        if (!pair_ready[pair]) {
            init_pair((short)pair, (short)lk.fg, (short)lk.bg);
            pair_ready[pair] = 1;
        }
        a |= (attr_t)COLOR_PAIR(pair);
    }
    return (unsigned long)a;
}

int term_resize(void)
{
    struct winsize ws;
    if (!term_open_flag || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 ||
        ws.ws_col == 0)
        return 0;
    if (ws.ws_row == LINES && ws.ws_col == COLS)
        return 0;
    resizeterm(ws.ws_row, ws.ws_col);
    return 1;
}

void term_pause(void)
{
    if (!term_open_flag)
        return;
    put_raw(PASTE_OFF);
    endwin();
}

void term_reinit(void)
{
    if (!term_open_flag)
        return;
    reset_prog_mode();
    set_modes();
    put_raw(PASTE_ON);
    term_resize();
    clearok(curscr, TRUE);
    refresh();
}

void term_suspend(void)
{
    struct sigaction dfl, old;
    sigset_t set, oldset;
    term_pause();
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTSTP, &dfl, &old);
    sigemptyset(&set);
    sigaddset(&set, SIGTSTP);
    pthread_sigmask(SIG_UNBLOCK, &set, &oldset);
    raise(SIGTSTP); /* stops here until SIGCONT */
    pthread_sigmask(SIG_SETMASK, &oldset, NULL);
    sigaction(SIGTSTP, &old, NULL);
    term_reinit();
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void term_osc52(const char *text, size_t len)
{
    size_t cap = 16 + (len + 2) / 3 * 4;
    char *out = malloc(cap), *p = out;
    if (!out)
        return;
    memcpy(p, "\033]52;c;", 7);
    p += 7;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        *p++ = b64[(v >> 18) & 63];
        *p++ = b64[(v >> 12) & 63];
        *p++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        *p++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *p++ = '\a';
    *p = 0;
    put_raw(out);
    free(out);
}
