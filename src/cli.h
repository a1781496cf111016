/*
 * cli.h — what the subcommands share: common options (model, threads, context, sampling),
 * opening the engine with a one-line error, and the SIGINT flag used to stop a reply.
 */
#ifndef KF_CLI_H
#define KF_CLI_H

#include <signal.h>
#include <stdio.h>

#include "engine.h"

struct cli_common {
    const char *model;          /* -m; NULL = the default model in the data dir */
    int n_threads;              /* -t */
    int n_ctx;                  /* -c */
    int n_batch;                /* -b */
    const char *template_name;  /* --template */
    struct sampler_params sp;   /* --temp --top-k --top-p --min-p --repeat-penalty ... --seed */
    struct kv_params kv;        /* --kv-policy --kv-recent --tau-* --kv-seed */
    const char *kv_budget;      /* --kv-budget */
    int kv_set;                 /* a --kv-* option was given */
    int verbose;                /* -v */
};

extern volatile sig_atomic_t cli_interrupted; /* set by SIGINT (cli_catch_sigint) */

void cli_common_init(struct cli_common *c);
/*
 * If argv[*i] is a common option, consume it (and its value), advance *i and return 1; return 0
 * if it is not one; -1 after printing a one-line error (bad or missing value).
 */
int cli_common_opt(struct cli_common *c, int argc, char **argv, int *i);
/* Print the common options' help lines. */
void cli_common_help(FILE *f);
/* Resolve the model path and open the engine; prints one line and returns NULL on failure. */
struct engine *cli_open_engine(const struct cli_common *c);
/* Parse an int / float option value, printing a one-line error on failure (returns -1). */
int cli_int(const char *opt, const char *s, long lo, long hi, int *out);
int cli_float(const char *opt, const char *s, double lo, double hi, float *out);
/* Read a whole stream into a malloc'd NUL-terminated string (NULL on error). */
char *cli_read_all(FILE *f, size_t *len);
/* Install a SIGINT handler that sets cli_interrupted (no SA_RESTART: reads return EINTR). */
void cli_catch_sigint(void);
/* Monotonic seconds. */
double cli_now(void);

int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
