/*
 * main.c — kfchat's entry point: dispatches to a subcommand (chat is the default).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#ifdef HAVE_UI
#include "app.h"
#endif

static void usage(FILE *f)
{
    fputs("usage: kfchat [chat] [options]          chat with the model (the default)\n"
          "       kfchat -p TEXT [options]          ask one question, print the answer, exit\n"
          "       kfchat generate -p TEXT [options] complete TEXT (or standard input)\n"
          "       kfchat tokenize [--no-bos] TEXT   print the token ids of TEXT\n"
          "       kfchat bench [-p 512] [-n 128] [-d DEPTH] [-r REPEATS] [--json]\n"
          "       kfchat eval --text FILE... [--kv-policy P,...] [--kv-budget X,...] [--json]\n"
          "       kfchat sessions [--json]          list the saved sessions\n"
          "       kfchat export ID|NAME [--format md|json] [-o FILE]\n"
          "       kfchat search TEXT                find TEXT in the saved sessions\n"
          "       kfchat --help | --version\n"
          "Run 'kfchat COMMAND --help' for the options of a command.\n", f);
}

/*
 * `kfchat` / `kfchat chat`: the full-screen UI when standard input and output are a terminal,
 * the line mode (cmd_chat) otherwise or with --plain, which is removed from argv for it.  A
 * headless question (-p TEXT, -f FILE) is the line mode's too, on a terminal as elsewhere.
 */
static int chat(int argc, char **argv)
{
    int plain = 0, j = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plain") == 0)
            plain = 1;
        else
            argv[j++] = argv[i];
        if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt") || !strcmp(argv[i], "-f") ||
            !strcmp(argv[i], "--file"))
            plain = 1;
    }
    argc = j;
#ifdef HAVE_UI
    if (!plain && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
        return app_main(argc, argv);
#else
    (void)plain; /* built without the UI: always the line mode */
#endif
    return cmd_chat(argc, argv);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("kfchat %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (argc > 1 && argv[1][0] != '-') {
        const char *cmd = argv[1];
        if (strcmp(cmd, "generate") == 0)
            return cmd_generate(argc - 1, argv + 1);
        if (strcmp(cmd, "tokenize") == 0)
            return cmd_tokenize(argc - 1, argv + 1);
        if (strcmp(cmd, "bench") == 0)
            return cmd_bench(argc - 1, argv + 1);
        if (strcmp(cmd, "chat") == 0)
            return chat(argc - 1, argv + 1);
        if (strcmp(cmd, "eval") == 0)
            return cmd_eval(argc - 1, argv + 1);
        if (!strcmp(cmd, "sessions") || !strcmp(cmd, "export") || !strcmp(cmd, "search"))
            return cmd_sessions(argc - 1, argv + 1);
        fprintf(stderr, "kfchat: unknown command '%s' (try kfchat --help)\n", cmd);
        return 2;
    }
    return chat(argc, argv);
}
