/*
 * term.h — the terminal itself: ncurses set-up and teardown, the colour/attribute of every
 * ui_style, suspending (Ctrl-Z, SIGTSTP), resizing, and the restore hook that puts the terminal
 * back in order on any exit — normal return, exit(), or a crash signal (SIGSEGV, SIGABRT,
 * SIGBUS, SIGFPE), as htop's CRT does.  Nothing else changes terminal modes.
 *
 * Input is not read through curses: the application reads standard input itself and hands
 * bytes to ui/input.c (readline must see the raw escape sequences), so keypad() stays off and
 * curses only draws.  The terminal is put in raw mode (Ctrl-C and Ctrl-Z arrive as bytes) and
 * bracketed paste is switched on.
 *
 * One thread (the UI thread) calls everything here except term_restore(), which the signal
 * handlers call.
 */
#ifndef KF_UI_TERM_H
#define KF_UI_TERM_H

#include <stddef.h>

#include "style.h"

/* Start curses on the controlling terminal (stdin/stdout).  0, or -1 if curses failed. */
int term_open(void);
/* Leave curses and restore the terminal; idempotent, also registered with atexit. */
void term_close(void);
/* What the crash handlers run: restore the tty as far as is async-signal-safe-ish. */
void term_restore(void);

int term_is_open(void);
int term_colors(void); /* colours in use (NO_COLOR and monochrome give 0) */
int term_ascii(void);  /* the locale is not UTF-8: draw decorations in ASCII */

/* The curses attributes (A_* | COLOR_PAIR) for style+flags, as an attr_t value. */
unsigned long term_attr(enum ui_style style, unsigned flags);

/* After SIGWINCH: read the new size from the tty and resize curses.  Returns 1 if it changed. */
int term_resize(void);
/* Ctrl-Z / SIGTSTP: restore the terminal, stop the process, and take the screen back after
 * SIGCONT (the caller then redraws everything). */
void term_suspend(void);
/* Take the screen back (after SIGCONT from outside, or $EDITOR ran): everything is redrawn. */
void term_reinit(void);
/* Leave the screen temporarily (to run $EDITOR); term_reinit() comes back. */
void term_pause(void);

/* Copy text to the clipboard of the terminal (OSC 52): works over ssh and in tmux (set-clipboard). */
void term_osc52(const char *text, size_t len);

#endif
