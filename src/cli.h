/*
 * cli.h — what the subcommands share: common options (model, threads, context, sampling),
 * opening the engine, the session store and a saved conversation with a one-line error, and
 * the SIGINT flag used to stop a reply.
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
    int n_gpu_layers;           /* -ngl N / --gpu: < 0 all (default), 0 CPU only */
    int gpu_asked;              /* -ngl or --gpu on given: say so when no GPU is used */
    unsigned set;               /* CLI_SET_* of the options given (saved settings fill the rest) */
};

/* Bits of cli_common.set: which options the command line gave. */
enum cli_set_flag {
    CLI_SET_MODEL = 1 << 0, CLI_SET_CTX = 1 << 1, CLI_SET_BATCH = 1 << 2,
    CLI_SET_TEMPLATE = 1 << 3, CLI_SET_TEMP = 1 << 4, CLI_SET_TOP_K = 1 << 5,
    CLI_SET_TOP_P = 1 << 6, CLI_SET_MIN_P = 1 << 7, CLI_SET_REPEAT = 1 << 8,
    CLI_SET_LAST_N = 1 << 9, CLI_SET_SEED = 1 << 10, CLI_SET_KV_POLICY = 1 << 11,
    CLI_SET_KV_BUDGET = 1 << 12, CLI_SET_KV_RECENT = 1 << 13, CLI_SET_TAU = 1 << 14,
    CLI_SET_KV_SEED = 1 << 15, CLI_SET_THREADS = 1 << 16, CLI_SET_KV_TYPE = 1 << 17,
};

/* What a conversation is opened with (chat, generate --session). */
struct cli_session {
    const char *name;   /* --session NAME: continue it, or create it */
    const char *resume; /* --resume ID|NAME|last */
    int no_save;        /* --no-save */
    int save;           /* save an unnamed session too (the interactive line mode does) */
    const char *system; /* --system TEXT (a new session only) */
    int n_predict;      /* -n; a resumed session's saved value unless n_predict_set */
    int n_predict_set;
};

/* Everything a conversation runs on, opened by cli_open_chat. */
struct cli_chat {
    struct engine *e;
    struct sampler *s;
    struct store *st;    /* NULL when the conversation is not saved */
    struct session *ss;
    char *model;         /* the model path in use, when cli_open_chat chose it (owned) */
    char *keep[2];       /* template and KV budget from saved settings (owned) */
};

struct store;
struct session;

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
/* If argv[*i] is --session, --resume or --no-save, consume it as cli_common_opt does. */
int cli_session_opt(struct cli_session *o, int argc, char **argv, int *i);
/* If argv[*i] is -p/--prompt TEXT or -f/--file FILE (generate's prompt, chat's headless turn),
 * consume it as cli_common_opt does, into *prompt or *file. */
int cli_text_opt(int argc, char **argv, int *i, const char **prompt, const char **file);
/* Print their help lines. */
void cli_session_help(FILE *f);
/* The session database: <data dir>/kfchat.db (paths.h).  STATUS_OK or STATUS_INVALID. */
int cli_store_path(char *buf, size_t n);
/* Open it (readonly: never create or write); prints one line and returns NULL on failure. */
struct store *cli_open_store(int readonly);
/*
 * The settings a saved session keeps (JSON, malloc'd; NULL if out of memory): what --resume
 * needs to reopen it as it ran (context, batch, template, KV options, sampler and the seed in
 * use, o->n_predict).  cli_settings_apply fills from such a text every option c and o did not
 * get from the command line; strings go to keep[0..1], which the caller frees afterwards.
 */
char *cli_settings_json(const struct cli_common *c, const struct cli_session *o,
                        const struct engine *e, uint64_t seed);
void cli_settings_apply(struct cli_common *c, struct cli_session *o, const char *json,
                        char *keep[2]);
/*
 * Open a conversation: the store (when o asks for a saved session), the session to continue
 * (its saved model, context, KV and sampler settings fill what c does not give), the engine,
 * the sampler and the session.  Prints one line and returns nonzero on failure (ch is then
 * closed); a resume note goes to stderr.
 */
int cli_open_chat(struct cli_chat *ch, struct cli_common *c, struct cli_session *o);
void cli_close_chat(struct cli_chat *ch);
/* Switch ch to the saved session key (id, name or 'last') on the same engine and sampler:
 * 0, 1 (not found or no store; printed, ch unchanged) or -1 (printed; ch->ss is NULL). */
int cli_chat_resume(struct cli_chat *ch, const struct cli_common *c, const struct cli_session *o,
                    const char *key);
/* The context a --kv-budget in tokens would give a chat on e (engine_info's
 * n_ctx_fixed_budget), or 0 where it would not: -c or a resumed session fixed the context, kv_budget
 * (tokens or memory) holds it already, or the policy is full.  For "context full" hints. */
int cli_budget_ctx(const struct cli_common *c, const char *kv_budget, const struct engine *e);
/* Split an option's comma list into at most max items (pointers into a strdup'd copy kept in
 * *owned, freed and replaced on each call; the caller frees it), printing a one-line error naming
 * what the items are on an empty or too long list (returns -1). */
int cli_split_list(const char *opt, const char *what, const char *s, int max, char **owned,
                   const char **items, int *n);
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
/* `kfchat sessions`, `kfchat export ID` and `kfchat search TEXT`, by argv[0] (cmd_sessions.c) */
int cmd_sessions(int argc, char **argv);

#endif
