/*
 * app_impl.h — what the UI loop (app.c) and the engine worker (app_worker.c) share: the job
 * queue (UI → worker) and the event queue (worker → UI), both under one mutex.
 *
 * The worker owns the engine, the sampler, the session and its store handle; the UI thread
 * owns the terminal and a second store handle (lists, search, export).  The worker wakes the UI
 * by writing one byte to wake_fd[1] when the event queue goes from empty to non-empty.
 */
#ifndef KF_APP_IMPL_H
#define KF_APP_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "cli.h"

enum job_kind {
    JOB_OPEN,    /* load the model, open the session (opts) */
    JOB_TURN,    /* text: a user message */
    JOB_REGEN,
    JOB_EDIT,    /* text: the new last user message */
    JOB_NEW,     /* text: system prompt or NULL */
    JOB_RESUME,  /* id */
    JOB_FORK,    /* text: name or NULL */
    JOB_RENAME,  /* text */
    JOB_REOPEN,  /* engine configuration changed: reopen and resume */
    JOB_SAMPLER, /* sampler parameters changed */
    JOB_KV,      /* send a key-token snapshot now */
    JOB_QUIT,
};

struct job {
    int kind;
    char *text;
    int64_t id;
    struct job *next;
};

enum ev_kind {
    EV_LOADED,     /* stats: the model is open (n_layer known) */
    EV_PROGRESS,   /* done/total tokens of a prompt */
    EV_CLEAR,      /* drop the transcript from message index `pos` on */
    EV_MSG,        /* role, text, spans: a whole message */
    EV_PIECE,      /* text at pos, appended to the last message */
    EV_KV,         /* kv snapshot */
    EV_STATS,      /* stats */
    EV_DONE,       /* a job ended: status */
    EV_NOTE,       /* text: one line for the user */
    EV_ERROR,      /* text */
};

struct app_stats {
    char model[96], policy[32];
    int kv_budget, n_layer, n_past, n_ctx;
    size_t kv_used, kv_full, kv_bytes;
    double prompt_tps, gen_tps;
    int64_t session_id;
    char session_name[96];
};

/* Trace of every (layer, KV head): entries [off[i], off[i] + count[i]) of pos/score/flags. */
struct kv_snap {
    int n_past, n_layer, n_head_kv;
    int *off, *count; /* n_layer × n_head_kv */
    int32_t *pos;
    float *score;
    uint8_t *flags;
};

struct ev {
    int kind;
    int status;
    int role; /* enum view_role */
    int pos;
    int done, total;
    char *text;
    size_t len;
    int *toff, *tpos;
    int ntok;
    struct kv_snap *kv;
    struct app_stats stats;
    struct ev *next;
};

struct worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *jobs, **jobs_tail;
    struct ev *evs, **evs_tail;
    int wake_fd[2];
    volatile int cancel;
    volatile int want_kv;  /* the key-token view is on: send snapshots while generating */
    volatile int busy;     /* a job is running */
    /* configuration, read by the worker at JOB_OPEN / JOB_REOPEN / JOB_SAMPLER (under mu) */
    struct cli_common cc;
    char *kv_budget;       /* owned copy of cc.kv_budget */
    char *system;
    char *session_name;
    int64_t resume_id;
    int n_predict;
    char db_path[4200];
};

int worker_start(struct worker *w);
/* Queue a job (text is copied). */
void worker_post(struct worker *w, int kind, const char *text, int64_t id);
/* Take all pending events, oldest first (the caller frees them with ev_free). */
struct ev *worker_take(struct worker *w);
void worker_stop(struct worker *w); /* JOB_QUIT, join */
void ev_free(struct ev *e);
void kv_snap_free(struct kv_snap *s);

struct view;
struct store;

enum pane { PANE_NONE, PANE_SESSIONS, PANE_SEARCH };

/* The UI thread's state (app.c, app_cmd.c). */
struct app {
    struct worker w;
    struct view *v;
    struct store *st; /* the UI's own handle: lists, search, export, delete */
    struct app_stats stats;
    int loaded, quit, ctrl_c_armed;
    double progress;
    const char *state;
    char note[256];
    double note_until;
    size_t rss;
    double t_rss, t_draw;
    /* the list pane */
    int pane, pane_sel, pane_n;
    int64_t *pane_ids;
    char pane_filter[256];
    int64_t confirm_delete; /* /delete asked, waiting for y */
    /* pending terminal bytes (an escape sequence may be cut between reads) */
    char kbuf[8192];
    size_t klen;
    int in_paste;
    /* --bench-keys */
    FILE *bench;
    double t_start, key_t[256];
    int n_key_t, first_frame;
    double *lat;
    size_t n_lat, cap_lat;
};

/* app.c */
void app_note(struct app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void app_notice(struct app *a, int role, const char *text); /* a line in the transcript */
int app_last_of(struct view *v, int role);                /* last message of role, or -1 */
/* app_cmd.c */
void app_on_line(struct app *a, char *line); /* an accepted input line */
void app_pane_fill(struct app *a, const char *query);
void app_pane_close(struct app *a);
int64_t app_parse_id(const char *s); /* a session id > 0, or 0 */

#endif
