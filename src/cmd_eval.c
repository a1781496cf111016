/* cmd_eval.c — `kfchat eval` (being written). */
#include "config.h"

#include <stdio.h>

#include "cli.h"

int cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kfchat: eval is not available yet\n");
    return 1;
}
