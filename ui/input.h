/*
 * input.h — the input line: GNU readline driven through its callback interface, and the
 * decoder that splits raw terminal bytes into application keys and readline's share.
 *
 * This is the only module that uses readline (so that it can be swapped for another editor).
 * Readline never touches the terminal here: it gets its bytes from input_feed() through
 * rl_getc_function, it neither prepares the tty nor catches signals, its output goes to
 * /dev/null, and its redisplay only marks the line dirty — ui/view.c draws it from
 * input_text()/input_cursor().  Emacs keys, the user's inputrc, and history (read at start,
 * one entry appended to the file per line) are readline's own.  Ctrl-J and Alt-Enter insert a
 * newline; Enter accepts.  Pasted text (bracketed paste) is inserted literally: a pasted
 * newline never sends the message and pasted bytes are never taken as key bindings.
 *
 * Everything is called from one thread (the UI thread).
 */
#ifndef KF_UI_INPUT_H
#define KF_UI_INPUT_H

#include <stddef.h>

/* Keys the application takes before readline sees them. */
enum input_key {
    INPUT_KEY_NONE,      /* not an application key: bytes go to readline */
    INPUT_KEY_CTRL_C,
    INPUT_KEY_CTRL_Z,
    INPUT_KEY_CTRL_L,
    INPUT_KEY_ESC,       /* a lone Escape (no sequence followed in time) */
    INPUT_KEY_F1,
    INPUT_KEY_F2,
    INPUT_KEY_F3,
    INPUT_KEY_F4,
    INPUT_KEY_PGUP,
    INPUT_KEY_PGDN,
    INPUT_KEY_S_LEFT,    /* Shift- or Alt-arrows: the key-token cursor */
    INPUT_KEY_S_RIGHT,
    INPUT_KEY_S_UP,
    INPUT_KEY_S_DOWN,
    INPUT_KEY_S_HOME,
    INPUT_KEY_S_END,
    INPUT_KEY_PASTE_BEGIN, /* ESC [ 200 ~ */
    INPUT_KEY_PASTE_END,   /* ESC [ 201 ~ */
};

/*
 * Decode the next key of buf[0..n): returns the bytes it takes (≥ 1) and sets *key, or 0 when
 * the bytes so far are the start of an escape sequence that may go on (the caller waits a
 * moment for more; if none comes, a lone ESC is INPUT_KEY_ESC, see input_decode_flush).
 * Bytes of INPUT_KEY_NONE keys go to readline unchanged (one UTF-8 character or one escape
 * sequence at a time).  Pure.
 */
size_t input_decode(const char *buf, size_t n, int *key);
/* Decode buf[0..n) when no more bytes came: an incomplete sequence is taken as it is. */
size_t input_decode_flush(const char *buf, size_t n, int *key);

/*
 * Start readline with history in history_path (NULL: no history file; the file and its
 * directory are created when missing).  Returns 0, or -1 with a message in err.
 */
int input_open(const char *history_path, char *err, size_t errlen);
void input_close(void);

/* Feed bytes to readline (keys, in order). */
void input_feed(const char *bytes, size_t n);
/* Insert text literally at the cursor (pasted text). */
void input_insert(const char *text, size_t n);
/* Clear the line being edited (Ctrl-C). */
void input_clear(void);
/* Replace the line being edited by text (e.g. /edit recall), cursor at its end. */
void input_set_text(const char *text);

/* A line was accepted: returns it (malloc'd; the caller frees) and forgets it, or NULL. */
char *input_take_line(void);
/* Ctrl-D on an empty line was seen (since the last call). */
int input_take_eof(void);

/* The line being edited (borrowed until the next input call), its length and the cursor's
 * byte offset. */
const char *input_text(size_t *len);
size_t input_cursor(void);
const char *input_prompt(void);
int input_empty(void);

/* Something changed since input_clear_dirty(): the input must be drawn again. */
int input_dirty(void);
void input_clear_dirty(void);

#endif
