/*
 * main.c — kfchat's entry point: dispatches to a subcommand (chat is the default).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fputs("usage: kfchat [chat] [options]          chat with the model (the default)\n"
          "       kfchat generate -p TEXT [options] complete TEXT (or standard input)\n"
          "       kfchat tokenize [--no-bos] TEXT   print the token ids of TEXT\n"
          "       kfchat bench [-p 512] [-n 128] [-d DEPTH] [-r REPEATS] [--json]\n"
          "       kfchat eval --text FILE... [--kv-policy P,...] [--kv-budget X,...] [--json]\n"
          "       kfchat --help | --version\n"
          "Run 'kfchat COMMAND --help' for the options of a command.\n", f);
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
            return cmd_chat(argc - 1, argv + 1);
        if (strcmp(cmd, "eval") == 0)
            return cmd_eval(argc - 1, argv + 1);
        fprintf(stderr, "kfchat: unknown command '%s' (try kfchat --help)\n", cmd);
        return 2;
    }
    return cmd_chat(argc, argv);
}
