/*
 * input.c — readline behind a byte-feeding bridge, and the key decoder (see input.h).
 *
 * Readline's globals live here and nowhere else.  Pitfalls this file avoids (docs/style.md §7):
 * readline must not prepare the tty, catch signals or export LINES/COLUMNS; rl_initialize()
 * runs before the redisplay hook is installed; readline's own output (bell, completion lists)
 * goes to /dev/null; pasted text bypasses the keymaps.
 */
#include "config.h"
#include "input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <readline/history.h>
#include <readline/readline.h>

// ---- key decoding (pure) ------------------------------------------------------------------

struct seq_key {
    const char *seq; /* after the ESC */
    int key;
};

static const struct seq_key seq_keys[] = {
    { "[11~", INPUT_KEY_F1 },     { "OP", INPUT_KEY_F1 },       { "[[A", INPUT_KEY_F1 },
    { "[12~", INPUT_KEY_F2 },     { "OQ", INPUT_KEY_F2 },       { "[[B", INPUT_KEY_F2 },
    { "[13~", INPUT_KEY_F3 },     { "OR", INPUT_KEY_F3 },       { "[[C", INPUT_KEY_F3 },
    { "[14~", INPUT_KEY_F4 },     { "OS", INPUT_KEY_F4 },       { "[[D", INPUT_KEY_F4 },
    { "[5~", INPUT_KEY_PGUP },    { "[6~", INPUT_KEY_PGDN },    { "[1;2D", INPUT_KEY_S_LEFT },
    { "[1;3D", INPUT_KEY_S_LEFT }, { "[1;2C", INPUT_KEY_S_RIGHT }, { "[1;3C", INPUT_KEY_S_RIGHT },
    { "[1;2A", INPUT_KEY_S_UP },  { "[1;3A", INPUT_KEY_S_UP },  { "[1;2B", INPUT_KEY_S_DOWN },
    { "[1;3B", INPUT_KEY_S_DOWN }, { "[1;2H", INPUT_KEY_S_HOME }, { "[1;2F", INPUT_KEY_S_END },
    { "[200~", INPUT_KEY_PASTE_BEGIN }, { "[201~", INPUT_KEY_PASTE_END },
};

/* Length of the escape sequence at buf (buf[0] == ESC), or 0 if it is not complete yet. */
static size_t seq_len(const unsigned char *buf, size_t n)
{
    if (n < 2)
        return 0;
    if (buf[1] == 'O')
        return n >= 3 ? 3 : 0;
    if (buf[1] == '[') {
        size_t i = 2;
        if (i < n && buf[i] == '[') /* linux console F1..F5: ESC [ [ A */
            return n >= 4 ? 4 : 0;
        for (; i < n; i++)
            if (buf[i] >= 0x40 && buf[i] <= 0x7e)
                return i + 1;
        return 0;
    }
    if (buf[1] == 0x1b)
        return 1; /* ESC ESC: the first is a meta prefix of its own */
    return 2;     /* Alt-x, Alt-Enter */
}

static size_t decode(const char *buf, size_t n, int *key, int flush)
{
    const unsigned char *b = (const unsigned char *)buf;
    *key = INPUT_KEY_NONE;
    if (n == 0)
        return 0;
    switch (b[0]) {
    case 0x03: *key = INPUT_KEY_CTRL_C; return 1;
    case 0x1a: *key = INPUT_KEY_CTRL_Z; return 1;
    case 0x0c: *key = INPUT_KEY_CTRL_L; return 1;
    case 0x1b: break;
    default: return 1;
    }
    size_t len = seq_len(b, n);
    if (len == 0) {
        if (!flush)
            return 0;
        if (n == 1) {
            *key = INPUT_KEY_ESC;
            return 1;
        }
        return n; /* a cut sequence: let readline make of it what it can */
    }
    for (size_t i = 0; i < sizeof seq_keys / sizeof seq_keys[0]; i++) {
        size_t k = strlen(seq_keys[i].seq);
        if (k == len - 1 && memcmp(buf + 1, seq_keys[i].seq, k) == 0) {
            *key = seq_keys[i].key;
            break;
        }
    }
    return len;
}

size_t input_decode(const char *buf, size_t n, int *key)
{
    return decode(buf, n, key, 0);
}

size_t input_decode_flush(const char *buf, size_t n, int *key)
{
    return decode(buf, n, key, 1);
}

// ---- the readline bridge ------------------------------------------------------------------

static char feed[4096];       /* bytes readline has still to read */
static size_t feed_head, feed_tail;
static char *done_line;       /* accepted, not yet taken */
static int got_eof;
static int dirty = 1;
static FILE *devnull;
static char *hist_path;
static const char prompt[] = "> ";

static int bridge_getc(FILE *f)
{
    (void)f;
    if (feed_head < feed_tail)
        return (unsigned char)feed[feed_head++];
    return EOF;
}

static int bridge_avail(void)
{
    return feed_head < feed_tail;
}

static void bridge_redisplay(void)
{
    /* drawing is view.c's job, at the UI loop's pace: just say the line changed */
    dirty = 1;
}

static void on_line(char *line)
{
    dirty = 1;
    if (!line) {
        got_eof = 1;
        return;
    }
    if (line[0]) {
        add_history(line);
        if (hist_path)
            append_history(1, hist_path); /* per line: a crash loses nothing typed */
    }
    free(done_line);
    done_line = line;
}

static int insert_newline(int count, int key)
{
    (void)key;
    for (int i = 0; i < (count > 0 ? count : 1); i++)
        rl_insert_text("\n");
    return 0;
}

static int prepare_history(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        mkdir(dir, 0700); /* the data dir; its parent normally exists (paths_mkdir_p in app) */
    }
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    fclose(f);
    return 0;
}

int input_open(const char *history_path, char *err, size_t errlen)
{
    devnull = fopen("/dev/null", "w");
    if (!devnull) {
        snprintf(err, errlen, "/dev/null: %s", strerror(errno));
        return -1;
    }
    rl_readline_name = "kfchat"; /* $if kfchat in inputrc */
    rl_instream = stdin;
    rl_outstream = devnull;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_prep_term_function = NULL;
    rl_deprep_term_function = NULL;
    rl_getc_function = bridge_getc;
    rl_input_available_hook = bridge_avail;
    rl_initialize(); /* reads inputrc and the terminal description first ... */
    rl_redisplay_function = bridge_redisplay; /* ... then the hook (rlwrap's order) */
    rl_bind_keyseq("\\C-j", insert_newline);
    rl_bind_keyseq("\\e\\C-m", insert_newline); /* Alt-Enter */
    rl_bind_key('\t', rl_insert);               /* no completion: it would print lists */
    using_history();
    history_comment_char = '#';   /* timestamps need it (readline leaves them empty without) */
    history_write_timestamps = 1; /* timestamps delimit entries, so multiline ones survive */
    history_multiline_entries = 1;
    free(hist_path);
    hist_path = NULL;
    if (history_path && prepare_history(history_path) == 0) {
        hist_path = strdup(history_path);
        read_history(hist_path);
    }
    rl_callback_handler_install(prompt, on_line);
    dirty = 1;
    return 0;
}

void input_close(void)
{
    rl_callback_handler_remove();
    clear_history();
    free(done_line);
    done_line = NULL;
    free(hist_path);
    hist_path = NULL;
    if (devnull)
        fclose(devnull);
    devnull = NULL;
    rl_outstream = NULL;
}

void input_feed(const char *bytes, size_t n)
{
    while (n > 0) {
        if (feed_head == feed_tail)
            feed_head = feed_tail = 0;
        size_t room = sizeof feed - feed_tail, k = n < room ? n : room;
        memcpy(feed + feed_tail, bytes, k);
        feed_tail += k;
        bytes += k;
        n -= k;
        /* one key per call; readline pulls more bytes itself when a key sequence goes on */
        while (feed_head < feed_tail)
            rl_callback_read_char();
    }
}

void input_insert(const char *text, size_t n)
{
    char *t = malloc(n + 1);
    size_t k = 0;
    if (!t)
        return;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\r') {
            t[k++] = '\n';
            if (i + 1 < n && text[i + 1] == '\n')
                i++;
        } else if (text[i] != 0) {
            t[k++] = text[i];
        }
    }
    t[k] = 0;
    rl_insert_text(t);
    free(t);
    dirty = 1;
}

void input_clear(void)
{
    rl_callback_sigcleanup(); /* leave i-search, a pending key sequence, ... */
    rl_replace_line("", 0);
    rl_point = rl_end = 0;
    rl_mark = 0;
    dirty = 1;
}

void input_set_text(const char *text)
{
    rl_replace_line(text, 0);
    rl_point = rl_end;
    dirty = 1;
}

char *input_take_line(void)
{
    char *l = done_line;
    done_line = NULL;
    return l;
}

int input_take_eof(void)
{
    int e = got_eof;
    got_eof = 0;
    return e;
}

const char *input_text(size_t *len)
{
    if (len)
        *len = rl_line_buffer ? (size_t)rl_end : 0;
    return rl_line_buffer ? rl_line_buffer : "";
}

size_t input_cursor(void)
{
    return rl_point > 0 ? (size_t)rl_point : 0;
}

const char *input_prompt(void)
{
    return rl_display_prompt ? rl_display_prompt : prompt;
}

int input_empty(void)
{
    return !rl_line_buffer || rl_end == 0;
}

int input_dirty(void)
{
    return dirty;
}

void input_clear_dirty(void)
{
    dirty = 0;
}
