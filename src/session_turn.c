/*
 * session_turn.c — the turn protocol of a session (see session.h): a user message committed
 * before it is evaluated, a reply streamed and committed with a snapshot, regenerate and edit
 * as new branches, fork and rename, and carrying the conversation over to a new engine or
 * sampler when the user changes settings.
 */
#include "config.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/store.h"
#include "session_impl.h"

// ---- turns -------------------------------------------------------------------------------------

/* The context positions message i takes with the generation prompt: what engine_chat_push
 * will evaluate, known before, so that the message can be committed before it is. */
static int turn_tokens(struct session *ss, size_t i, int *n)
{
    char *text;
    int32_t *toks = NULL;
    int st = chat_template_render_turn(engine_chat_format(ss->e), ss->view, i, 1, &text);
    if (st != STATUS_OK)
        return sess_fail(ss, st, "cannot render the message: %s", status_str(st));
    st = engine_tokenize(ss->e, text, strlen(text), engine_n_past(ss->e) == 0, 1, &toks, n);
    free(text);
    free(toks);
    return st != STATUS_OK ? sess_engine_fail(ss, st) : STATUS_OK;
}

int session_user(struct session *ss, const char *text, const volatile int *cancel,
                 session_progress_fn progress, void *ud)
{
    if (!text)
        return sess_fail(ss, STATUS_INVALID, "no text");
    int64_t created = sess_now_ms();
    int st = sess_ensure(ss, ss->n, 0, 1, cancel, progress, ud, NULL, NULL, 0);
    if (st != STATUS_OK)
        return st;
    size_t i = ss->n;
    int n = 0, left = engine_n_ctx(ss->e) - engine_n_past(ss->e);
    if ((st = sess_msg_append(ss, STORE_ROLE_USER, text, strlen(text))) != STATUS_OK)
        return st;
    if ((st = turn_tokens(ss, i, &n)) == STATUS_OK && n > left)
        st = sess_fail(ss, STATUS_CONTEXT_FULL, "context full: the message needs %d tokens, %d "
                       "are left of %d", n, left, engine_n_ctx(ss->e));
    ss->m[i].pos = engine_n_past(ss->e);
    ss->m[i].n_tokens = n;
    /* committed before it is evaluated: a kill during a long prompt keeps the message */
    if (st == STATUS_OK)
        st = sess_commit(ss, i, created);
    if (st != STATUS_OK) {
        sess_msg_truncate(ss, i); /* not added, and nothing evaluated */
        return st;
    }
    double t0 = sess_now_s();
    st = sess_push(ss, i, 1, cancel, progress, ud);
    double dt = sess_now_s() - t0;
    ss->prompt_tps = st == STATUS_OK && dt > 0 ? ss->m[i].n_tokens / dt : 0;
    return st; /* stopped or failed: the message stays, to be evaluated with the next turn */
}

/* Append bytes to a growing buffer; -1 on allocation failure. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 1024) + n;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* Sample until a stop token, n_predict, a full context or a stop request; *text gets the
 * reply (malloc'd), *n_gen the tokens generated. */
static int generate(struct session *ss, session_piece_fn on_piece, void *ud,
                    const volatile int *cancel, char **text, int *n_gen)
{
    char piece[256];
    size_t len = 0, cap = 0;
    int st = STATUS_OK;
    *text = NULL;
    *n_gen = 0;
    if (buf_add(text, &len, &cap, "", 0))
        return sess_fail(ss, STATUS_NOMEM, "out of memory");
    while (ss->n_predict < 0 || *n_gen < ss->n_predict) {
        if (cancel && *cancel) {
            st = STATUS_STOPPED;
            break;
        }
        if (engine_n_past(ss->e) >= engine_n_ctx(ss->e)) {
            st = sess_fail(ss, STATUS_CONTEXT_FULL, "context full (%d tokens)",
                           engine_n_ctx(ss->e));
            break;
        }
        int tok = sampler_sample(ss->s, engine_logits(ss->e), engine_n_vocab(ss->e));
        if (tok < 0) {
            st = sess_fail(ss, tok, "sampling failed: %s", status_str(tok));
            break;
        }
        sampler_accept(ss->s, tok);
        if (engine_is_eog(ss->e, tok))
            break;
        int k = engine_token_piece(ss->e, tok, piece, sizeof piece);
        if (k > 0 && buf_add(text, &len, &cap, piece, (size_t)k)) {
            st = sess_fail(ss, STATUS_NOMEM, "out of memory");
            break;
        }
        (*n_gen)++;
        /* the token goes into the context even when the caller stops here: text and KV agree */
        int stop = on_piece && on_piece(ud, piece, k > 0 ? k : 0, tok);
        int32_t t = tok;
        if ((st = engine_eval(ss->e, &t, 1, NULL, NULL, NULL)) != STATUS_OK) {
            sess_engine_fail(ss, st);
            break;
        }
        if (stop) {
            st = STATUS_STOPPED;
            break;
        }
    }
    return st;
}

int session_reply(struct session *ss, session_piece_fn on_piece, void *ud,
                  const volatile int *cancel)
{
    if (!ss->n || ss->m[ss->n - 1].role != STORE_ROLE_USER)
        return sess_fail(ss, STATUS_INVALID, "there is no user message to reply to");
    int64_t created = sess_now_ms();
    int st = sess_ensure(ss, ss->n, 1, 1, cancel, NULL, NULL, NULL, NULL, 0);
    if (st != STATUS_OK)
        return st;
    int pos = engine_n_past(ss->e), n_gen = 0;
    char *text;
    double t0 = sess_now_s();
    st = generate(ss, on_piece, ud, cancel, &text, &n_gen);
    double dt = sess_now_s() - t0;
    ss->gen_tps = n_gen > 0 && dt > 0 ? n_gen / dt : 0;
    if (!text)
        return st;
    if (st < 0 && st != STATUS_CONTEXT_FULL) { /* an engine failure: nothing is kept */
        free(text);
        ss->in_ok = 0;
        return st;
    }
    int ast = sess_msg_append(ss, STORE_ROLE_ASSISTANT, text, strlen(text));
    free(text);
    if (ast != STATUS_OK) {
        ss->in_ok = 0;
        return ast;
    }
    size_t i = ss->n - 1;
    int cst = engine_chat_close_reply(ss->e);
    ss->m[i].pos = pos;
    ss->m[i].n_tokens = engine_n_past(ss->e) - pos;
    if (cst == STATUS_OK)
        sess_state_set(ss, ss->n, 0);
    else {
        ss->in_ok = 0; /* no room for the closing text: the next turn rebuilds (and says so) */
        if (st == STATUS_OK)
            st = sess_engine_fail(ss, cst);
    }
    int mst = sess_commit(ss, i, created);
    if (mst != STATUS_OK)
        return mst;
    if (cst == STATUS_OK)
        sess_snap_save(ss, ss->m[i].id); /* one not stored only costs re-processing at resume */
    return st;
}

int session_regen(struct session *ss, session_piece_fn on_piece, void *ud,
                  const volatile int *cancel)
{
    if (ss->n && ss->m[ss->n - 1].role == STORE_ROLE_ASSISTANT)
        sess_msg_truncate(ss, ss->n - 1);
    return session_reply(ss, on_piece, ud, cancel);
}

int session_edit_last(struct session *ss, const char *text, session_piece_fn on_piece, void *ud,
                      const volatile int *cancel)
{
    size_t u = ss->n;
    while (u > 0 && ss->m[u - 1].role != STORE_ROLE_USER)
        u--;
    if (u == 0)
        return sess_fail(ss, STATUS_INVALID, "there is no user message to edit");
    sess_msg_truncate(ss, u - 1);
    int st = session_user(ss, text, cancel, NULL, NULL);
    if (st != STATUS_OK)
        return st;
    return session_reply(ss, on_piece, ud, cancel);
}

int session_fork(struct session *ss, const char *name)
{
    if (name && !*name)
        name = NULL;
    if (!ss->st) { /* in memory a fork is the same conversation under another name */
        free(ss->name);
        ss->name = sess_dup_str(name);
        return STATUS_OK;
    }
    int st = ss->n ? sess_commit(ss, ss->n - 1, 0) : STATUS_OK;
    if (st != STATUS_OK)
        return st;
    int64_t id = 0;
    if (ss->n)
        st = store_session_fork(ss->st, ss->m[ss->n - 1].id, name, &id);
    else {
        struct engine_info in;
        engine_get_info(ss->e, &in);
        st = store_session_create(ss->st, name, in.path, engine_model_fingerprint(ss->e),
                                  ss->settings, &id);
    }
    if (st != STATUS_OK)
        return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    /* the copies have new ids; the text, and so the engine state, is the same */
    int64_t leaf = 0;
    struct store_msg *v = NULL;
    size_t n = 0;
    if (ss->n && ((st = store_msg_latest_leaf(ss->st, id, &leaf)) != STATUS_OK ||
                  (st = store_msg_path(ss->st, leaf, &v, &n)) != STATUS_OK))
        return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    if (n != ss->n) {
        store_msg_array_free(v, n);
        return sess_fail(ss, STATUS_FORMAT, "the fork has %zu messages instead of %zu", n,
                         ss->n);
    }
    for (size_t i = 0; i < n; i++)
        ss->m[i].id = v[i].id;
    store_msg_array_free(v, n);
    ss->id = id;
    free(ss->name);
    ss->name = sess_dup_str(name);
    return STATUS_OK;
}

int session_rename(struct session *ss, const char *name)
{
    if (name && !*name)
        name = NULL;
    if (ss->st) {
        int st = ss->id ? store_session_rename(ss->st, ss->id, name) : STATUS_OK;
        if (st != STATUS_OK)
            return sess_fail(ss, st, "%s", store_errmsg(ss->st));
    }
    char *copy = sess_dup_str(name);
    if (name && !copy)
        return sess_fail(ss, STATUS_NOMEM, "out of memory");
    free(ss->name);
    ss->name = copy;
    if (ss->st && !ss->id && name)
        return sess_create(ss); /* so that the name is taken now, not at the first turn */
    return STATUS_OK;
}

int session_rebind(struct session *ss, struct engine *e, struct sampler *s,
                   const struct sampler_params *sampling, const volatile int *cancel,
                   session_progress_fn progress, void *ud, size_t *replayed)
{
    *replayed = 0;
    if (e != ss->e) {
        /* what the old engine held, and its snapshots, are of other settings: start empty */
        sess_snap_drop(ss);
        ss->e = e;
        ss->meta_dirty = 1;
        sess_read_engine(ss);
        engine_reset(e);
        sess_state_set(ss, 0, 0);
    }
    ss->s = s;
    if (sampling)
        sess_sampler_json(ss->sampler_json, sizeof ss->sampler_json, sampling, sampler_seed(s));
    /* up to the last reply; a user message still without one is evaluated with its reply */
    size_t upto = ss->n && ss->m[ss->n - 1].role == STORE_ROLE_USER ? ss->n - 1 : ss->n;
    return sess_ensure(ss, upto, 0, 1, cancel, progress, ud, replayed, NULL, 0);
}

double session_prompt_tps(const struct session *ss)
{
    return ss->prompt_tps;
}

double session_gen_tps(const struct session *ss)
{
    return ss->gen_tps;
}
