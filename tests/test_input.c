/*
 * test_input.c — the input bridge without a terminal: the key decoder, and readline fed byte by
 * byte (emacs keys, Ctrl-J / Alt-Enter newlines, paste inserted literally, history file).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "input.h"
#include "tap.h"

static int key_of(const char *s, size_t *used)
{
    int k;
    *used = input_decode(s, strlen(s), &k);
    return k;
}

static void feed(const char *s)
{
    input_feed(s, strlen(s));
}

static int line_is(const char *want)
{
    size_t n;
    const char *t = input_text(&n);
    return n == strlen(want) && memcmp(t, want, n) == 0;
}

int main(void)
{
    size_t u;
    char err[256], dir[] = "/tmp/kf-input-XXXXXX", hist[128];
    ok(key_of("\033OQ", &u) == INPUT_KEY_F2 && u == 3, "F2 (SS3)");
    ok(key_of("\033[12~x", &u) == INPUT_KEY_F2 && u == 5, "F2 (CSI) takes only its bytes");
    ok(key_of("\033[1;2D", &u) == INPUT_KEY_S_LEFT && u == 6, "Shift-Left");
    ok(key_of("\033[200~abc", &u) == INPUT_KEY_PASTE_BEGIN && u == 6, "paste begin");
    ok(key_of("\x03", &u) == INPUT_KEY_CTRL_C && u == 1, "Ctrl-C is an application key");
    ok(key_of("\033[A", &u) == INPUT_KEY_NONE && u == 3, "Up goes to readline whole");
    ok(key_of("\033\r", &u) == INPUT_KEY_NONE && u == 2, "Alt-Enter goes to readline whole");
    ok(input_decode("\033[1;", 4, (int[1]){ 0 }) == 0, "a cut sequence waits");
    int k;
    ok(input_decode_flush("\033", 1, &k) == 1 && k == INPUT_KEY_ESC, "a lone ESC is Escape");
    ok(key_of("\xc3\xa9", &u) == INPUT_KEY_NONE && u == 1, "UTF-8 passes byte by byte");

    if (!mkdtemp(dir))
        return skip_all("no temporary directory");
    snprintf(hist, sizeof hist, "%s/kfchat/history", dir);
    setenv("TERM", "dumb", 1);
    setenv("INPUTRC", "/dev/null", 1);
    ok(input_open(hist, err, sizeof err) == 0, "input_open");
    feed("hello");
    ok(line_is("hello") && input_cursor() == 5 && input_dirty(), "typed text");
    feed("\001X"); /* Ctrl-A, X */
    ok(line_is("Xhello") && input_cursor() == 1, "Ctrl-A moves home");
    feed("\005\n"); /* Ctrl-E, Ctrl-J */
    ok(line_is("Xhello\n"), "Ctrl-J inserts a newline");
    feed("w\033\r2");
    ok(line_is("Xhello\nw\n2"), "Alt-Enter inserts a newline");
    ok(input_take_line() == NULL, "nothing accepted yet");
    input_insert("p1\r\np2", 6);
    ok(line_is("Xhello\nw\n2p1\np2"), "pasted text is inserted literally, CRLF as newline");
    feed("\r");
    char *l = input_take_line();
    ok(l && strcmp(l, "Xhello\nw\n2p1\np2") == 0, "Enter accepts the whole multiline text");
    free(l);
    ok(input_empty(), "the line is empty afterwards");
    feed("second\r");
    free(input_take_line());
    feed("\020"); /* Ctrl-P: previous history entry */
    ok(line_is("second"), "history: Ctrl-P recalls");
    input_clear();
    ok(input_empty(), "input_clear");
    feed("\004");
    ok(input_take_eof(), "Ctrl-D on an empty line is EOF");
    input_close();
    FILE *f = fopen(hist, "r");
    char buf[512] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    ok(strstr(buf, "second") && strstr(buf, "w\n2p1"), "history file holds both entries");
    ok(input_open(hist, err, sizeof err) == 0, "reopen");
    feed("\020\020");
    ok(line_is("Xhello\nw\n2p1\np2"), "a multiline entry survives a restart");
    input_close();
    unlink(hist);
    snprintf(hist, sizeof hist, "%s/kfchat", dir);
    rmdir(hist);
    rmdir(dir);
    return done_testing();
}
