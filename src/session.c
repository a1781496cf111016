/*
 * session.c — one conversation: the current branch of messages, what the engine holds of it,
 * and the turn protocol with its commits and snapshots (see session.h for the contract).
 *
 * Invariant.  The engine holds the turns of msgs[0..in_n) exactly as an uninterrupted run
 * would have evaluated them, plus the generation prompt when in_gen, as long as in_ok is set
 * and msgs[in_n - 1] is still the message it was (in_uid; uids never repeat, so a replaced
 * branch is noticed).  Anything that leaves the engine in between (a stopped prompt, a failed
 * close) clears in_ok.  sess_ensure() brings the engine to any prefix of the branch: from the
 * current state when it is a prefix, else from the newest snapshot at or before the target
 * (one of the last two kept in memory, or the store's), else from an empty context, then
 * replays the remaining messages the way they were first evaluated (a user turn with the
 * generation prompt when a reply follows it, a reply as its tokens plus the closing text).
 *
 * The sampler is restored only when the session is opened: in a running session a rebuild
 * (regenerate, edit) keeps the sampler's RNG going, so a regenerated reply differs.
 *
 * This file holds the branch, the engine and store sides and opening; the turns (user, reply,
 * regenerate, edit, fork, rename, rebind) are in session_turn.c.
 */
#include "config.h"
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../data/store.h"
#include "session_impl.h"
// ---- small helpers ---------------------------------------------------------------------------

int sess_fail(struct session *ss, int st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ss->err, sizeof ss->err, fmt, ap);
    va_end(ap);
    return st;
}

int sess_engine_fail(struct session *ss, int st)
{
    return sess_fail(ss, st, "%s", engine_errmsg(ss->e));
}

/* A store write failed: report it and go on without the store, since later commits would
 * need the parent ids of the ones that failed. */
static int fail_store(struct session *ss, int st)
{
    sess_fail(ss, st, "%s (this session is no longer saved)", store_errmsg(ss->st));
    ss->st = NULL;
    return st;
}

int64_t sess_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double sess_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *sess_dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The sampler chain as JSON: what each reply records, so that it can be reproduced. */
void sess_sampler_json(char *buf, size_t n, const struct sampler_params *p, uint64_t seed)
{
    snprintf(buf, n,
             "{\"temp\":%.9g,\"top_k\":%d,\"top_p\":%.9g,\"min_p\":%.9g,\"repeat_penalty\":%.9g,"
             "\"penalty_last_n\":%d,\"freq_penalty\":%.9g,\"presence_penalty\":%.9g,"
             "\"seed\":%llu}",
             p->temp, p->top_k, p->top_p, p->min_p, p->repeat_penalty, p->penalty_last_n,
             p->freq_penalty, p->presence_penalty, (unsigned long long)seed);
}

// ---- the branch in memory ----------------------------------------------------------------------

int sess_msg_append(struct session *ss, enum store_role role, const char *text, size_t len)
{
    if (ss->n == ss->cap) {
        size_t cap = ss->cap ? ss->cap * 2 : 16;
        struct smsg *m = realloc(ss->m, cap * sizeof(*m));
        if (!m)
            return sess_fail(ss, STATUS_NOMEM, "out of memory");
        ss->m = m;
        struct chat_msg *v = realloc(ss->view, cap * sizeof(*v));
        if (!v)
            return sess_fail(ss, STATUS_NOMEM, "out of memory");
        ss->view = v;
        ss->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return sess_fail(ss, STATUS_NOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = 0;
    struct smsg *m = &ss->m[ss->n];
    memset(m, 0, sizeof(*m));
    m->role = role;
    m->text = copy;
    m->uid = ++ss->next_uid;
    static const char *const names[] = { "system", "user", "assistant" };
    ss->view[ss->n].role = names[role];
    ss->view[ss->n].content = copy;
    ss->n++;
    return STATUS_OK;
}

void sess_msg_truncate(struct session *ss, size_t n)
{
    while (ss->n > n)
        free(ss->m[--ss->n].text);
}

static int uid_at(const struct session *ss, size_t at, uint64_t uid)
{
    return at <= ss->n && (at == 0 ? uid == 0 : ss->m[at - 1].uid == uid);
}

void sess_state_set(struct session *ss, size_t n, int gen)
{
    ss->in_n = n;
    ss->in_uid = n ? ss->m[n - 1].uid : 0;
    ss->in_gen = gen;
    ss->in_ok = 1;
}

/* Must the engine hold the generation prompt after msgs[0..i) to go on towards (upto, gen)?
 * A reply continues from the generation prompt; everything else from a closed turn. */
static int needs_gen(const struct session *ss, size_t i, size_t upto, int gen)
{
    return i == upto ? gen : ss->m[i].role == STORE_ROLE_ASSISTANT;
}

// ---- the engine side ---------------------------------------------------------------------------

/*
 * Evaluate message i on top of msgs[0..i), as the first run did: a reply is its tokens plus the
 * closing text (the generation prompt came with the user turn).  Tokenizing a reply's text may
 * not give back the sampled tokens, so a replayed reply is close to, not always bit-identical
 * with, the original; snapshots are what makes resume exact.
 */
int sess_push(struct session *ss, size_t i, int gen, const volatile int *cancel,
              session_progress_fn progress, void *ud)
{
    struct smsg *m = &ss->m[i];
    int pos = engine_n_past(ss->e), st;
    if (m->role == STORE_ROLE_ASSISTANT) {
        int32_t *toks = NULL;
        int nt = 0;
        st = engine_tokenize(ss->e, m->text, strlen(m->text), 0, 0, &toks, &nt);
        if (st == STATUS_OK && nt > 0)
            st = engine_eval(ss->e, toks, nt, cancel, NULL, NULL);
        for (int k = 0; st == STATUS_OK && k < nt; k++)
            sampler_accept(ss->s, toks[k]);
        free(toks);
        if (st == STATUS_OK)
            st = engine_chat_close_reply(ss->e);
        gen = 0;
    } else {
        st = engine_chat_push(ss->e, ss->view, i, gen, cancel, progress, ud);
        if (st == STATUS_CONTEXT_FULL)
            return sess_engine_fail(ss, st); /* nothing was evaluated: the state stands */
    }
    if (st != STATUS_OK) {
        ss->in_ok = 0;
        return sess_engine_fail(ss, st);
    }
    m->pos = pos;
    m->n_tokens = engine_n_past(ss->e) - pos;
    sess_state_set(ss, i + 1, gen);
    return STATUS_OK;
}

/* Load a snapshot blob; on failure the engine is unchanged and err says why. */
static int load_blob(struct session *ss, const void *data, size_t len, size_t at)
{
    int st = engine_state_load(ss->e, ss->s, data, len);
    if (st != STATUS_OK)
        return sess_engine_fail(ss, st);
    sess_state_set(ss, at, 0);
    return STATUS_OK;
}

/* Keep data (a snapshot after msgs[0..at), owned from now on) in memory, in place of one that
 * no longer fits the branch, else of the older one: after a regen the turn before is kept. */
static void snap_keep(struct session *ss, void *data, size_t len, size_t at)
{
    struct snap *a = &ss->snap[0], *b = &ss->snap[1], *k;
    if (!a->data || !b->data)
        k = !a->data ? a : b;
    else if (!uid_at(ss, a->at, a->uid) || !uid_at(ss, b->at, b->uid))
        k = !uid_at(ss, a->at, a->uid) ? a : b;
    else
        k = a->at < b->at ? a : b;
    free(k->data);
    *k = (struct snap){ .data = data, .len = len, .at = at, .uid = at ? ss->m[at - 1].uid : 0 };
}

void sess_snap_save(struct session *ss, int64_t msg_id)
{
    void *data;
    size_t len;
    if (engine_state_save(ss->e, ss->s, &data, &len) != STATUS_OK)
        return; /* resume and regen then re-process */
    if (ss->st && msg_id &&
        store_snapshot_put(ss->st, msg_id, SNAP_FORMAT, engine_model_fingerprint(ss->e), data,
                           len) == STATUS_OK)
        free(data); /* a regen or edit loads it back from the store */
    else
        snap_keep(ss, data, len, ss->n);
}

void sess_read_engine(struct session *ss)
{
    struct engine_info in;
    engine_get_info(ss->e, &in);
    snprintf(ss->tmpl, sizeof ss->tmpl, "%s", in.template_name);
    snprintf(ss->kv_policy, sizeof ss->kv_policy, "%s", in.kv_policy);
    ss->kv_budget = in.kv_budget >= in.n_ctx ? 0 : in.kv_budget;
}

void sess_snap_drop(struct session *ss)
{
    for (int k = 0; k < 2; k++) {
        free(ss->snap[k].data);
        ss->snap[k] = (struct snap){ 0 };
    }
}

/* Where the store's newest snapshot on the branch up to msgs[upto - 1] is: msgs[0..at) with
 * at returned (0: none usable) and its message id in *found. */
static size_t stored_at(struct session *ss, size_t upto, int gen, int64_t *found)
{
    *found = 0;
    if (!ss->st || upto == 0 || !ss->m[upto - 1].id ||
        store_snapshot_find(ss->st, ss->m[upto - 1].id, found) != STATUS_OK)
        return 0;
    size_t j = upto;
    while (j > 0 && ss->m[j - 1].id != *found)
        j--;
    return j > 0 && !needs_gen(ss, j, upto, gen) ? j : 0;
}

static int load_stored(struct session *ss, int64_t id, size_t at)
{
    struct store_snapshot sn;
    int st = store_snapshot_get(ss->st, id, &sn);
    if (st != STATUS_OK)
        return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    if (strcmp(sn.format, SNAP_FORMAT) != 0)
        st = sess_fail(ss, STATUS_FORMAT, "the saved state has an unknown format '%s'", sn.format);
    else
        st = load_blob(ss, sn.data, sn.size, at); /* not kept: the store has it (session.h) */
    store_snapshot_clear(&sn);
    return st;
}

/* A snapshot in memory that can start the way to (upto, gen): its index, or -1. */
static int mem_snap(const struct session *ss, size_t upto, int gen)
{
    int best = -1;
    for (int k = 0; k < 2; k++) {
        const struct snap *sn = &ss->snap[k];
        if (sn->data && sn->at <= upto && uid_at(ss, sn->at, sn->uid) &&
            !needs_gen(ss, sn->at, upto, gen) && (best < 0 || sn->at > ss->snap[best].at))
            best = k;
    }
    return best;
}

/*
 * Bring the engine to msgs[0..upto) plus the generation prompt if gen, from the newest usable
 * start: the current state, a snapshot in memory or the store's, else an empty context.
 * keep_sampler: leave the sampler as it is (in a running session); else it comes from the
 * snapshot used, as at resume.  *replayed (may be NULL) gets the number of messages
 * re-processed; why (may be NULL) why the store's snapshot could not be used ("" if it could).
 */
int sess_ensure(struct session *ss, size_t upto, int gen, int keep_sampler,
                const volatile int *cancel, session_progress_fn progress, void *ud,
                size_t *replayed, char *why, size_t whylen)
{
    if (replayed)
        *replayed = 0;
    if (why && whylen)
        why[0] = 0;
    int cur = ss->in_ok && ss->in_n <= upto && uid_at(ss, ss->in_n, ss->in_uid) &&
              ss->in_gen == needs_gen(ss, ss->in_n, upto, gen);
    if (cur && ss->in_n == upto)
        return STATUS_OK;
    int mem = mem_snap(ss, upto, gen);
    size_t mem_at = mem >= 0 ? ss->snap[mem].at : 0, from = 0;
    int64_t sto_id;
    size_t sto_at = stored_at(ss, upto, gen, &sto_id);
    if (cur && ss->in_n >= mem_at && ss->in_n >= sto_at)
        from = ss->in_n;
    else {
        void *keep = keep_sampler ? malloc(sampler_state_size(ss->s)) : NULL;
        if (keep_sampler && !keep)
            return sess_fail(ss, STATUS_NOMEM, "out of memory");
        if (keep)
            sampler_state_save(ss->s, keep);
        int done = mem >= 0 && mem_at >= sto_at &&
                   load_blob(ss, ss->snap[mem].data, ss->snap[mem].len, mem_at) == STATUS_OK;
        if (!done && sto_at) {
            done = load_stored(ss, sto_id, sto_at) == STATUS_OK;
            if (!done && why)
                snprintf(why, whylen, "%s", ss->err);
        }
        if (!done && mem >= 0 && mem_at < sto_at)
            done = load_blob(ss, ss->snap[mem].data, ss->snap[mem].len, mem_at) == STATUS_OK;
        if (!done) {
            engine_reset(ss->e);
            sess_state_set(ss, 0, 0);
        }
        from = ss->in_n;
        if (keep) {
            sampler_state_load(ss->s, keep, sampler_state_size(ss->s));
            free(keep);
        }
    }
    int st = STATUS_OK;
    size_t i;
    for (i = from; i < upto && st == STATUS_OK; i++)
        st = sess_push(ss, i, ss->m[i].role == STORE_ROLE_USER && needs_gen(ss, i + 1, upto, gen),
                  cancel, progress, ud);
    if (replayed)
        *replayed = i - from;
    return st;
}

// ---- the store side ----------------------------------------------------------------------------

int sess_create(struct session *ss)
{
    struct engine_info in;
    engine_get_info(ss->e, &in);
    int st = store_session_create(ss->st, ss->name, in.path, engine_model_fingerprint(ss->e),
                                  ss->settings, &ss->id);
    if (st != STATUS_OK)
        return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    return STATUS_OK;
}

/* Save msgs up to and including last that are not saved yet (a system prompt waits for the
 * first user turn, so that opening and leaving stores nothing).  created: start of the turn. */
int sess_commit(struct session *ss, size_t last, int64_t created)
{
    if (!ss->st)
        return STATUS_OK;
    int st = STATUS_OK;
    if (!ss->id && (st = sess_create(ss)) != STATUS_OK)
        return st;
    if (ss->meta_dirty) {
        struct engine_info in;
        engine_get_info(ss->e, &in);
        st = store_session_set_model(ss->st, ss->id, in.path, engine_model_fingerprint(ss->e),
                                     ss->settings);
        if (st != STATUS_OK)
            return fail_store(ss, st);
        ss->meta_dirty = 0;
    }
    for (size_t i = 0; i <= last; i++) {
        struct smsg *m = &ss->m[i];
        if (m->id)
            continue;
        struct store_msg sm = {
            .session_id = ss->id,
            .parent_id = i ? ss->m[i - 1].id : 0,
            .role = m->role,
            .text = m->text,
            .n_tokens = m->n_tokens,
            .created_ms = i == last ? created : 0,
            .gen = { .model_hash = engine_model_fingerprint(ss->e), .template_name = ss->tmpl,
                     .kv_policy = ss->kv_policy, .kv_budget = ss->kv_budget },
        };
        if (m->role == STORE_ROLE_ASSISTANT) {
            sm.gen.sampler = ss->sampler_json[0] ? ss->sampler_json : NULL;
            sm.gen.seed = sampler_seed(ss->s);
        }
        if ((st = store_msg_insert(ss->st, &sm, &m->id)) != STATUS_OK)
            return fail_store(ss, st);
    }
    return STATUS_OK;
}

/* Fill the branch from the store: the path to the session's newest message. */
static int load_branch(struct session *ss)
{
    int64_t leaf = 0;
    int st = store_msg_latest_leaf(ss->st, ss->id, &leaf);
    if (st != STATUS_OK || !leaf)
        return st == STATUS_OK ? st : sess_fail(ss, st, "%s", store_errmsg(ss->st));
    struct store_msg *v;
    size_t n;
    if ((st = store_msg_path(ss->st, leaf, &v, &n)) != STATUS_OK)
        return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    int pos = 0;
    for (size_t i = 0; i < n && st == STATUS_OK; i++) {
        st = sess_msg_append(ss, v[i].role, v[i].text, strlen(v[i].text));
        if (st == STATUS_OK) {
            ss->m[i].id = v[i].id;
            ss->m[i].pos = pos;
            ss->m[i].n_tokens = (int)v[i].n_tokens;
            pos += (int)v[i].n_tokens;
        }
    }
    store_msg_array_free(v, n);
    return st;
}

// ---- opening -----------------------------------------------------------------------------------

/* Find the session to continue (resume_id, or an existing name), or prepare a new one. */
static int find_session(struct session *ss, const struct session_opts *o, int *resuming)
{
    struct store_session rec;
    int st;
    *resuming = 0;
    if (o->resume_id) {
        st = store_session_get(ss->st, o->resume_id, &rec);
        if (st == STATUS_NOT_FOUND)
            return sess_fail(ss, st, "no session with id %lld", (long long)o->resume_id);
    } else if (o->name) {
        st = store_session_find(ss->st, o->name, &rec);
        if (st == STATUS_NOT_FOUND) /* a new named session is created at once */
            return sess_create(ss);
    } else
        return STATUS_OK;
    if (st != STATUS_OK)
        return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    ss->id = rec.id;
    free(ss->name);
    ss->name = sess_dup_str(rec.name);
    store_session_clear(&rec);
    *resuming = 1;
    ss->meta_dirty = 1;
    return load_branch(ss);
}

/* Rebuild the engine state of a resumed branch and say how (resume kind and note). */
static int resume_state(struct session *ss)
{
    /* a user message without its reply (killed mid-reply) is caught up with the next turn */
    size_t upto = ss->n, replayed = 0;
    int lost = ss->n && ss->m[ss->n - 1].role == STORE_ROLE_USER;
    if (lost)
        upto--;
    char why[512];
    int st = sess_ensure(ss, upto, 0, 0, NULL, NULL, NULL, &replayed, why, sizeof why);
    if (st != STATUS_OK)
        return st;
    ss->resume = replayed ? SESSION_REPROCESSED : SESSION_RESTORED;
    const char *pl = replayed == 1 ? "" : "s";
    if (replayed && why[0])
        snprintf(ss->note, sizeof ss->note, "%.400s; re-processed %zu message%s", why,
                 replayed, pl);
    else if (replayed && replayed == upto)
        snprintf(ss->note, sizeof ss->note, "no saved state; re-processed %zu message%s",
                 replayed, pl);
    else if (replayed)
        snprintf(ss->note, sizeof ss->note,
                 "the saved state was %zu message%s behind; re-processed %s", replayed, pl,
                 replayed == 1 ? "it" : "them");
    if (lost) {
        size_t k = strlen(ss->note);
        snprintf(ss->note + k, sizeof ss->note - k, "%sthe reply to the last message was not "
                 "saved", k ? "; " : "");
    }
    return STATUS_OK;
}

int session_open(struct session **out, struct engine *e, struct sampler *s, struct store *st,
                 const struct session_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    struct session *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    ss->e = e;
    ss->s = s;
    ss->st = st;
    ss->n_predict = o->n_predict;
    ss->name = sess_dup_str(o->name);
    ss->settings = sess_dup_str(o->settings);
    sess_read_engine(ss);
    if (o->sampling)
        sess_sampler_json(ss->sampler_json, sizeof ss->sampler_json, o->sampling,
                          sampler_seed(s));
    int rc = STATUS_OK, resuming = 0;
    if (st && store_is_readonly(st))
        rc = sess_fail(ss, STATUS_IO, "%s", "the session database is read-only");
    else if (st)
        rc = find_session(ss, o, &resuming);
    else if (o->resume_id)
        rc = sess_fail(ss, STATUS_INVALID, "resuming a session needs the session database");
    if (rc == STATUS_OK && resuming && ss->n)
        rc = resume_state(ss);
    else if (rc == STATUS_OK) {
        engine_reset(e);
        sess_state_set(ss, 0, 0);
    }
    if (rc == STATUS_OK && ss->n == 0 && o->system && *o->system) {
        rc = sess_msg_append(ss, STORE_ROLE_SYSTEM, o->system, strlen(o->system));
        if (rc == STATUS_OK)
            rc = sess_push(ss, 0, 0, NULL, NULL, NULL);
    }
    if (rc != STATUS_OK) {
        status_set(err, errlen, rc, "%s", ss->err);
        session_close(ss);
        return rc;
    }
    *out = ss;
    return STATUS_OK;
}

void session_close(struct session *ss)
{
    if (!ss)
        return;
    sess_msg_truncate(ss, 0);
    free(ss->m);
    free(ss->view);
    free(ss->name);
    free(ss->settings);
    sess_snap_drop(ss);
    free(ss);
}

const char *session_errmsg(const struct session *ss)
{
    return ss->err;
}

int64_t session_id(const struct session *ss)
{
    return ss->id;
}

const char *session_name(const struct session *ss)
{
    return ss->name;
}

enum session_resume session_resume_kind(const struct session *ss)
{
    return ss->resume;
}

const char *session_resume_note(const struct session *ss)
{
    return ss->note;
}

size_t session_n_msgs(const struct session *ss)
{
    return ss->n;
}

const struct chat_msg *session_msgs(const struct session *ss)
{
    return ss->view;
}

int session_msg_pos(const struct session *ss, size_t i)
{
    return i < ss->n ? ss->m[i].pos : engine_n_past(ss->e);
}

int64_t session_msg_id(const struct session *ss, size_t i)
{
    return i < ss->n ? ss->m[i].id : 0;
}
