/*
 * app_worker.c — the engine worker thread of the TUI: it owns the engine, the sampler, the
 * session and the session's store handle, runs one job at a time from the UI's queue (load,
 * turn, regenerate, ...), and reports back through the event queue: messages, streamed pieces
 * with their context positions, prompt progress, statistics and key-token snapshots.
 *
 * Why a thread: a forward pass takes tens of milliseconds to seconds; the UI thread must keep
 * reading keys and drawing meanwhile.  The engine and store are used from this thread only;
 * what the UI sees of them is copied into events.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_impl.h"
#include "paths.h"
#include "session.h"
#include "../data/store.h"
#include "view.h"

struct wk {
    struct worker *w;
    struct engine *e;
    struct sampler *s;
    struct store *st;
    struct session *ss;
    struct engine_info info;
    double t0, t_last;  /* generation start, last stats/snapshot */
    int n_gen;
    double gen_tps;     /* live estimate while generating */
    /* the KV settings the engine was last opened with: what /policy or /budget go back to
     * when the new ones do not work */
    struct kv_params kv_ok;
    int kv_set_ok, have_ok;
    char *budget_ok;
};

// ---- queues -------------------------------------------------------------------------------

void ev_free(struct ev *e)
{
    if (!e)
        return;
    free(e->text);
    free(e->toff);
    free(e->tpos);
    kv_snap_free(e->kv);
    free(e);
}

void kv_snap_free(struct kv_snap *s)
{
    if (!s)
        return;
    free(s->off);
    free(s->count);
    free(s->pos);
    free(s->score);
    free(s->flags);
    free(s);
}

static void post(struct worker *w, struct ev *e)
{
    pthread_mutex_lock(&w->mu);
    int was_empty = w->evs == NULL;
    *w->evs_tail = e;
    w->evs_tail = &e->next;
    pthread_mutex_unlock(&w->mu);
    if (was_empty) {
        char c = 1;
        /* a full pipe means the UI has a wake-up pending anyway */
        if (write(w->wake_fd[1], &c, 1) < 0) {
        }
    }
}

static struct ev *ev_new(int kind)
{
    struct ev *e = calloc(1, sizeof *e);
    if (e)
        e->kind = kind;
    return e;
}

static void post_text(struct worker *w, int kind, int role, const char *text, size_t len)
{
    struct ev *e = ev_new(kind);
    if (!e)
        return;
    e->role = role;
    e->text = malloc(len + 1);
    if (e->text) {
        memcpy(e->text, text, len);
        e->text[len] = 0;
        e->len = len;
    }
    post(w, e);
}

struct ev *worker_take(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    struct ev *e = w->evs;
    w->evs = NULL;
    w->evs_tail = &w->evs;
    pthread_mutex_unlock(&w->mu);
    return e;
}

void worker_post(struct worker *w, int kind, const char *text, int64_t id)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->kind = kind;
    j->text = text ? strdup(text) : NULL;
    j->id = id;
    pthread_mutex_lock(&w->mu);
    *w->jobs_tail = j;
    w->jobs_tail = &j->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static struct job *take_job(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->jobs)
        pthread_cond_wait(&w->cv, &w->mu);
    struct job *j = w->jobs;
    w->jobs = j->next;
    if (!w->jobs)
        w->jobs_tail = &w->jobs;
    pthread_mutex_unlock(&w->mu);
    return j;
}

// ---- what the UI is told ----------------------------------------------------------------------

static void fill_stats(struct wk *k, struct app_stats *s)
{
    memset(s, 0, sizeof *s);
    if (!k->e)
        return;
    snprintf(s->model, sizeof s->model, "%s", k->info.name ? k->info.name : "");
    snprintf(s->policy, sizeof s->policy, "%s", k->info.kv_policy ? k->info.kv_policy : "");
    s->kv_budget = k->info.kv_budget;
    s->n_layer = k->info.n_layer;
    s->n_ctx = engine_n_ctx(k->e);
    s->n_past = engine_n_past(k->e);
    s->kv_used = engine_kv_bytes_used(k->e);
    s->kv_full = engine_kv_bytes_full(k->e);
    s->kv_bytes = k->info.kv_budget_bytes; /* the budget, not the allocation's headroom */
    if (k->ss) {
        s->prompt_tps = session_prompt_tps(k->ss);
        s->gen_tps = k->n_gen > 0 ? k->gen_tps : session_gen_tps(k->ss);
        s->session_id = session_id(k->ss);
        const char *nm = session_name(k->ss);
        snprintf(s->session_name, sizeof s->session_name, "%s", nm ? nm : "");
    }
}

static void post_stats(struct wk *k, int kind, int status)
{
    struct ev *e = ev_new(kind);
    if (!e)
        return;
    e->status = status;
    fill_stats(k, &e->stats);
    post(k->w, e);
}

/* Copy the cache's trace of every (layer, KV head): what the key-token view shades. */
static void post_kv(struct wk *k)
{
    const struct kv_cache *kv = k->e ? engine_kv(k->e) : NULL;
    if (!kv)
        return;
    int nl = k->info.n_layer, nh = k->info.n_head_kv, total = 0;
    struct kv_snap *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->n_past = engine_n_past(k->e);
    s->n_layer = nl;
    s->n_head_kv = nh;
    s->off = calloc((size_t)nl * nh, sizeof *s->off);
    s->count = calloc((size_t)nl * nh, sizeof *s->count);
    if (!s->off || !s->count)
        goto fail;
    for (int i = 0; i < nl * nh; i++) {
        s->off[i] = total;
        total += kv_cache_n_used(kv, i / nh, i % nh);
    }
    s->pos = malloc(((size_t)total + 1) * sizeof *s->pos);
    s->score = malloc(((size_t)total + 1) * sizeof *s->score);
    s->flags = malloc((size_t)total + 1);
    if (!s->pos || !s->score || !s->flags)
        goto fail;
    for (int i = 0; i < nl * nh; i++) {
        int n = (i + 1 < nl * nh ? s->off[i + 1] : total) - s->off[i];
        s->count[i] = kv_cache_trace(kv, i / nh, i % nh, s->pos + s->off[i],
                                     s->score + s->off[i], s->flags + s->off[i], n);
    }
    struct ev *e = ev_new(EV_KV);
    if (!e)
        goto fail;
    e->kv = s;
    post(k->w, e);
    return;
fail:
    kv_snap_free(s);
}

static int role_of(const char *r)
{
    if (!strcmp(r, "user"))
        return VIEW_USER;
    if (!strcmp(r, "assistant"))
        return VIEW_ASSISTANT;
    return VIEW_SYSTEM;
}

/*
 * Token spans of message i: where its content's tokens sit in the context.  The turn is
 * rendered in the chat format to count the header tokens before the content; the content is
 * tokenized alone, so the spans are the engine's view up to merges at the edges.
 */
static void msg_spans(struct wk *k, size_t i, struct ev *e)
{
    const struct chat_msg *msgs = session_msgs(k->ss);
    const char *c = msgs[i].content;
    int p0 = session_msg_pos(k->ss, i), hdr = 0, n = 0;
    char *out = NULL;
    int32_t *ids = NULL;
    if (p0 < 0 || !c)
        return;
    if (chat_template_render_turn(engine_chat_format(k->e), msgs, i, 0, &out) == STATUS_OK) {
        const char *at = strstr(out, c);
        if (at && at > out && engine_tokenize(k->e, out, (size_t)(at - out), 0, 1, &ids, &hdr))
            hdr = 0;
        free(ids);
        ids = NULL;
    }
    free(out);
    if (p0 == 0 && engine_bos(k->e) >= 0)
        hdr++;
    if (engine_tokenize(k->e, c, strlen(c), 0, 0, &ids, &n) != STATUS_OK || n <= 0)
        return;
    e->toff = malloc((size_t)n * sizeof *e->toff);
    e->tpos = malloc((size_t)n * sizeof *e->tpos);
    if (e->toff && e->tpos) {
        size_t off = 0, len = strlen(c);
        char piece[256];
        for (int t = 0; t < n; t++) {
            e->toff[t] = (int)(off < len ? off : len);
            e->tpos[t] = p0 + hdr + t;
            int pl = engine_token_piece(k->e, ids[t], piece, sizeof piece);
            off += pl > 0 ? (size_t)pl : 0;
        }
        e->ntok = n;
    }
    free(ids);
}

static void post_msg(struct wk *k, size_t i, int with_spans)
{
    const struct chat_msg *m = &session_msgs(k->ss)[i];
    struct ev *e = ev_new(EV_MSG);
    if (!e)
        return;
    e->role = role_of(m->role);
    e->text = strdup(m->content ? m->content : "");
    e->len = e->text ? strlen(e->text) : 0;
    if (with_spans)
        msg_spans(k, i, e);
    post(k->w, e);
}

/* The whole transcript up to message n (exclusive), after EV_CLEAR. */
static void post_transcript(struct wk *k, size_t n)
{
    struct ev *e = ev_new(EV_CLEAR);
    if (e)
        post(k->w, e);
    if (!k->ss)
        return;
    size_t all = session_n_msgs(k->ss);
    for (size_t i = 0; i < n && i < all; i++)
        post_msg(k, i, 1);
}

// ---- callbacks from the session ---------------------------------------------------------------

static int on_piece(void *ud, const char *piece, int len, int32_t token)
{
    struct wk *k = ud;
    (void)token;
    struct ev *e = ev_new(EV_PIECE);
    if (e) {
        e->text = malloc((size_t)len + 1);
        if (e->text) {
            memcpy(e->text, piece, (size_t)len);
            e->text[len] = 0;
            e->len = (size_t)len;
        }
        /* the piece's token is evaluated after this call: it will sit at n_past */
        e->pos = engine_n_past(k->e);
        post(k->w, e);
    }
    k->n_gen++;
    double now = cli_now();
    if (now > k->t0)
        k->gen_tps = k->n_gen / (now - k->t0);
    if (now - k->t_last > 0.1) {
        k->t_last = now;
        post_stats(k, EV_STATS, 0);
        if (k->w->want_kv)
            post_kv(k);
    }
    return k->w->cancel;
}

static void on_progress(void *ud, int done, int total)
{
    struct wk *k = ud;
    double now = cli_now();
    if (done < total && now - k->t_last < 0.05)
        return;
    k->t_last = now;
    struct ev *e = ev_new(EV_PROGRESS);
    if (e) {
        e->done = done;
        e->total = total;
        post(k->w, e);
    }
}

static void begin_gen(struct wk *k)
{
    k->n_gen = 0;
    k->gen_tps = 0;
    k->t0 = k->t_last = cli_now();
}

// ---- jobs ---------------------------------------------------------------------------------

static void report_session_error(struct wk *k, int st)
{
    if (st == STATUS_STOPPED)
        return;
    const char *m = k->ss ? session_errmsg(k->ss) : "";
    if (!m || !*m)
        m = k->e ? engine_errmsg(k->e) : status_str(st);
    if (st != STATUS_CONTEXT_FULL || !k->e) {
        post_text(k->w, st == STATUS_CONTEXT_FULL ? EV_NOTE : EV_ERROR, 0, m, strlen(m));
        return;
    }
    /* what the user can do: /budget N reopens the engine, in the training context where the
     * context is not fixed (cli_budget_ctx) */
    struct worker *w = k->w;
    pthread_mutex_lock(&w->mu);
    int to = cli_budget_ctx(&w->cc, w->kv_budget, k->e);
    pthread_mutex_unlock(&w->mu);
    char note[1200];
    if (to)
        snprintf(note, sizeof note, "%s: /budget N keeps N tokens a layer and lets this chat go "
                 "on to %d; /new starts another", m, to);
    else
        snprintf(note, sizeof note, "%s: /new starts another chat", m);
    post_text(w, EV_NOTE, 0, note, strlen(note));
}

/* Open the engine and sampler with the worker's configuration; err gets why not. */
static int open_engine(struct wk *k, char *err, size_t errlen)
{
    struct worker *w = k->w;
    char path[4096];
    pthread_mutex_lock(&w->mu);
    struct cli_common cc = w->cc;
    char *budget = w->kv_budget ? strdup(w->kv_budget) : NULL;
    pthread_mutex_unlock(&w->mu);
    cc.kv_budget = budget;
    int st = STATUS_INVALID;
    if (cc.model)
        snprintf(path, sizeof path, "%s", cc.model);
    else if (paths_default_model(path, sizeof path) != STATUS_OK) {
        snprintf(err, errlen, "cannot locate the data directory (set HOME or XDG_DATA_HOME)");
        goto fail;
    } else if (access(path, R_OK) != 0) {
        snprintf(err, errlen, "default model %s is not installed (run ./quickstart, or "
                                  "pass -m FILE)", path);
        goto fail;
    }
    struct engine_params p = { .model_path = path, .n_ctx = cc.n_ctx, .n_batch = cc.n_batch,
                               .n_threads = cc.n_threads, .template_name = cc.template_name,
                               .kv = cc.kv, .kv_budget = cc.kv_budget, .kv_set = cc.kv_set };
    st = engine_open(&k->e, &p, err, errlen);
    if (st != STATUS_OK)
        goto fail;
    engine_get_info(k->e, &k->info);
    st = sampler_new(&k->s, &cc.sp, engine_n_vocab(k->e));
    if (st != STATUS_OK) {
        snprintf(err, errlen, "cannot create the sampler");
        goto fail;
    }
    k->kv_ok = cc.kv;
    k->kv_set_ok = cc.kv_set;
    free(k->budget_ok);
    k->budget_ok = budget;
    k->have_ok = 1;
    return STATUS_OK;
fail:
    free(budget);
    return st ? st : STATUS_INVALID;
}

static void close_session(struct wk *k)
{
    session_close(k->ss);
    k->ss = NULL;
}

/* Open (or continue) a session on the engine; the transcript goes to the UI.  On failure the
 * message goes to err (errlen > 0) or to the UI. */
static int open_session(struct wk *k, int64_t resume_id, const char *name, const char *system,
                        char *err, size_t errlen)
{
    char buf[1024] = "";
    pthread_mutex_lock(&k->w->mu);
    struct sampler_params sp = k->w->cc.sp;
    pthread_mutex_unlock(&k->w->mu);
    struct session_opts o = { .name = name, .resume_id = resume_id, .system = system,
                              .n_predict = k->w->n_predict, .sampling = &sp };
    close_session(k);
    engine_reset(k->e);
    sampler_reset(k->s);
    int st = session_open(&k->ss, k->e, k->s, k->st, &o, buf, sizeof buf);
    if (st != STATUS_OK) {
        k->ss = NULL;
        if (errlen)
            snprintf(err, errlen, "%s", buf);
        else
            post_text(k->w, EV_ERROR, 0, buf, strlen(buf));
        return st;
    }
    post_transcript(k, session_n_msgs(k->ss));
    const char *note = session_resume_note(k->ss);
    if (note && *note)
        post_text(k->w, EV_NOTE, 0, note, strlen(note));
    return STATUS_OK;
}

/* /resume ID: a session that cannot be found leaves the current one as it is. */
static int job_resume(struct wk *k, int64_t id)
{
    char err[1024];
    struct store_session rec;
    int st = k->st ? store_session_get(k->st, id, &rec) : STATUS_INVALID;
    if (st == STATUS_OK)
        store_session_clear(&rec);
    else {
        if (!k->st)
            snprintf(err, sizeof err, "resuming a session needs the session database");
        else if (st == STATUS_NOT_FOUND)
            snprintf(err, sizeof err, "no session with id %lld", (long long)id);
        else
            snprintf(err, sizeof err, "%s", store_errmsg(k->st));
        post_text(k->w, EV_ERROR, 0, err, strlen(err));
        return st;
    }
    int64_t old = k->ss ? session_id(k->ss) : 0;
    st = open_session(k, id, NULL, NULL, err, sizeof err);
    if (st != STATUS_OK) {
        if (old > 0)
            open_session(k, old, NULL, NULL, NULL, 0);
        post_text(k->w, EV_ERROR, 0, err, strlen(err)); /* after the transcript */
    }
    return st;
}

static int job_open(struct wk *k)
{
    struct worker *w = k->w;
    char note[1100] = "";
    if (!k->st && w->db_path[0]) {
        char err[1024];
        int ro = 0;
        if (store_open(&k->st, w->db_path, 0, err, sizeof err) != STATUS_OK) {
            k->st = NULL;
        } else if (store_is_readonly(k->st)) {
            store_close(k->st);
            k->st = NULL;
            ro = 1;
        }
        if (!k->st) /* chat on, without history, and say so */
            snprintf(note, sizeof note, "%s; this chat is not saved",
                     ro ? "the session database is read-only" : err);
    }
    char err[4400];
    int st = open_engine(k, err, sizeof err);
    if (st == STATUS_OK) {
        post_stats(k, EV_LOADED, 0);
        const char *name = w->resume_id > 0 ? NULL : w->session_name;
        st = open_session(k, w->resume_id, name, w->system, err, sizeof err);
        if (st != STATUS_OK) /* chat on in a new session rather than not at all */
            open_session(k, 0, NULL, w->system, NULL, 0);
    }
    /* messages after the transcript, which clears the view */
    if (st != STATUS_OK)
        post_text(w, EV_ERROR, 0, err, strlen(err));
    if (note[0])
        post_text(w, EV_ERROR, 0, note, strlen(note));
    if (st == STATUS_OK && k->w->want_kv)
        post_kv(k);
    return st;
}

/*
 * The KV policy or budget changed: a new engine, and the conversation carried over to it by
 * re-processing, store or no store (session_rebind).  If the new settings cannot be opened, the
 * previous ones are restored: changing a setting never costs the conversation.
 */
static int job_reopen(struct wk *k)
{
    struct worker *w = k->w;
    size_t sn = k->s ? sampler_state_size(k->s) : 0;
    void *sstate = sn ? malloc(sn) : NULL;
    if (sstate)
        sampler_state_save(k->s, sstate); /* the RNG and penalties go on in the new sampler */
    /* one engine at a time: the old one's memory is given back before the new one is made */
    sampler_free(k->s);
    engine_close(k->e);
    k->s = NULL;
    k->e = NULL;
    char err[4400], why[4500] = "";
    int st = open_engine(k, err, sizeof err);
    if (st != STATUS_OK && k->have_ok) {
        pthread_mutex_lock(&w->mu);
        w->cc.kv = k->kv_ok;
        w->cc.kv_set = k->kv_set_ok;
        free(w->kv_budget);
        w->kv_budget = k->budget_ok ? strdup(k->budget_ok) : NULL;
        pthread_mutex_unlock(&w->mu);
        /* said after the transcript is sent again, which clears the view */
        snprintf(why, sizeof why, "%s; kept the previous KV settings", err);
        st = open_engine(k, err, sizeof err);
    }
    if (st != STATUS_OK) {
        free(sstate);
        post_text(w, EV_ERROR, 0, err, strlen(err));
        return st; /* no engine: the session waits (turns say "no model loaded") */
    }
    if (sstate)
        sampler_state_load(k->s, sstate, sn);
    free(sstate);
    post_stats(k, EV_LOADED, 0);
    if (!k->ss) /* the first open failed: start the conversation now */
        return open_session(k, 0, w->session_name, w->system, NULL, 0);
    pthread_mutex_lock(&w->mu);
    struct sampler_params sp = w->cc.sp;
    pthread_mutex_unlock(&w->mu);
    size_t replayed = 0;
    k->t_last = cli_now();
    st = session_rebind(k->ss, k->e, k->s, &sp, &w->cancel, on_progress, k, &replayed);
    post_transcript(k, session_n_msgs(k->ss)); /* with the spans of the new context */
    if (why[0])
        post_text(w, EV_ERROR, 0, why, strlen(why));
    else if (st == STATUS_OK && replayed) {
        char note[96];
        snprintf(note, sizeof note, "re-processed %zu message%s with the new settings", replayed,
                 replayed == 1 ? "" : "s");
        post_text(w, EV_NOTE, 0, note, strlen(note));
    } else if (st == STATUS_STOPPED) {
        const char *m = "stopped: the conversation is re-processed with the next message";
        post_text(w, EV_NOTE, 0, m, strlen(m));
    } else if (st != STATUS_OK) {
        report_session_error(k, st);
    }
    return st;
}

/* Sampling parameters changed: a new sampler that goes on from the old one's state; the
 * engine and the conversation stay as they are. */
static int job_sampler(struct wk *k)
{
    struct worker *w = k->w;
    struct sampler *s;
    pthread_mutex_lock(&w->mu);
    struct sampler_params sp = w->cc.sp;
    pthread_mutex_unlock(&w->mu);
    if (sampler_new(&s, &sp, engine_n_vocab(k->e)) != STATUS_OK)
        return STATUS_NOMEM;
    size_t n = sampler_state_size(k->s);
    void *buf = malloc(n ? n : 1);
    if (buf) {
        sampler_state_save(k->s, buf);
        sampler_state_load(s, buf, n);
        free(buf);
    }
    int st = STATUS_OK;
    if (k->ss) {
        size_t replayed;
        st = session_rebind(k->ss, k->e, s, &sp, &w->cancel, on_progress, k, &replayed);
        if (st != STATUS_OK)
            report_session_error(k, st);
    }
    sampler_free(k->s);
    k->s = s;
    return st;
}

static void begin_reply(struct wk *k)
{
    struct ev *e = ev_new(EV_MSG);
    if (e) {
        e->role = VIEW_ASSISTANT;
        post(k->w, e);
    }
    begin_gen(k);
}

static int job_turn(struct wk *k, const char *text)
{
    post_text(k->w, EV_MSG, VIEW_USER, text, strlen(text));
    k->t_last = cli_now();
    int st = session_user(k->ss, text, &k->w->cancel, on_progress, k);
    if (st != STATUS_OK) {
        report_session_error(k, st);
        return st;
    }
    /* the user message's spans, now that its position is known (EV_MSG with role -1) */
    struct ev *e = ev_new(EV_MSG);
    if (e) {
        e->role = -1;
        msg_spans(k, session_n_msgs(k->ss) - 1, e);
        post(k->w, e);
    }
    begin_reply(k);
    st = session_reply(k->ss, on_piece, k, &k->w->cancel);
    if (st != STATUS_OK)
        report_session_error(k, st);
    return st;
}

static int job_regen(struct wk *k)
{
    size_t n = session_n_msgs(k->ss);
    if (n == 0 || strcmp(session_msgs(k->ss)[n - 1].role, "assistant") != 0) {
        post_text(k->w, EV_NOTE, 0, "nothing to regenerate", 21);
        return STATUS_INVALID;
    }
    post_transcript(k, n - 1);
    begin_reply(k);
    int st = session_regen(k->ss, on_piece, k, &k->w->cancel);
    if (st != STATUS_OK)
        report_session_error(k, st);
    return st;
}

static int job_edit(struct wk *k, const char *text)
{
    size_t n = session_n_msgs(k->ss), u = n;
    while (u > 0 && strcmp(session_msgs(k->ss)[u - 1].role, "user") != 0)
        u--;
    if (u == 0) {
        post_text(k->w, EV_NOTE, 0, "no message to edit", 18);
        return STATUS_INVALID;
    }
    post_transcript(k, u - 1);
    post_text(k->w, EV_MSG, VIEW_USER, text, strlen(text));
    begin_reply(k);
    int st = session_edit_last(k->ss, text, on_piece, k, &k->w->cancel);
    if (st != STATUS_OK)
        report_session_error(k, st);
    post_transcript(k, session_n_msgs(k->ss)); /* with the spans of the new turn */
    return st;
}

static int run_job(struct wk *k, struct job *j)
{
    struct worker *w = k->w;
    char note[160];
    if (j->kind == JOB_OPEN)
        return job_open(k);
    if (j->kind == JOB_REOPEN)
        return job_reopen(k);
    if (j->kind == JOB_QUIT)
        return STATUS_OK;
    if (!k->e || (!k->ss && j->kind != JOB_NEW && j->kind != JOB_RESUME)) {
        post_text(w, EV_NOTE, 0, "no model loaded", 15);
        return STATUS_INVALID;
    }
    int st = STATUS_OK;
    switch (j->kind) {
    case JOB_TURN: return job_turn(k, j->text ? j->text : "");
    case JOB_REGEN: return job_regen(k);
    case JOB_EDIT: return job_edit(k, j->text ? j->text : "");
    case JOB_NEW: return open_session(k, 0, NULL, j->text, NULL, 0);
    case JOB_RESUME: return job_resume(k, j->id);
    case JOB_SAMPLER: return job_sampler(k);
    case JOB_FORK:
        st = session_fork(k->ss, j->text);
        if (st == STATUS_OK) {
            snprintf(note, sizeof note, "forked: now in session %lld",
                     (long long)session_id(k->ss));
            post_text(w, EV_NOTE, 0, note, strlen(note));
        } else {
            report_session_error(k, st);
        }
        return st;
    case JOB_RENAME:
        st = session_rename(k->ss, j->text);
        if (st != STATUS_OK)
            report_session_error(k, st);
        return st;
    case JOB_KV:
        post_kv(k);
        return STATUS_OK;
    default: return STATUS_INVALID;
    }
}

static void *worker_main(void *arg)
{
    struct wk k = { .w = arg };
    for (;;) {
        struct job *j = take_job(k.w);
        int kind = j->kind;
        k.w->busy = 1;
        if (kind != JOB_KV)
            k.w->cancel = 0;
        int st = run_job(&k, j);
        free(j->text);
        free(j);
        if (k.e && k.w->want_kv && kind != JOB_KV && kind != JOB_QUIT)
            post_kv(&k);
        k.n_gen = 0;
        k.w->busy = 0;
        post_stats(&k, EV_DONE, st);
        if (kind == JOB_QUIT)
            break;
    }
    session_close(k.ss);
    sampler_free(k.s);
    engine_close(k.e);
    store_close(k.st);
    free(k.budget_ok);
    return NULL;
}

int worker_start(struct worker *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->jobs = NULL;
    w->jobs_tail = &w->jobs;
    w->evs = NULL;
    w->evs_tail = &w->evs;
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void worker_stop(struct worker *w)
{
    w->cancel = 1;
    worker_post(w, JOB_QUIT, NULL, 0);
    pthread_join(w->thread, NULL);
    for (struct ev *e = worker_take(w), *nx; e; e = nx) {
        nx = e->next;
        ev_free(e);
    }
}
