/*
 * app.h — the full-screen chat: `kfchat` / `kfchat chat` when standard input and output are a
 * terminal.  Owns the UI thread's event loop and the engine worker thread.
 */
#ifndef KF_APP_H
#define KF_APP_H

/* Run the TUI with chat's options (argv[0] is "chat" or the program); returns the exit code. */
int app_main(int argc, char **argv);

#endif
