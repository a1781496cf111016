/*
 * app_cmd.c — the TUI's slash commands and the list pane (/sessions, /search): what a line of
 * input does when it is not a message.  UI thread only; work on the conversation is posted to
 * the engine worker, the session list, search, export and delete use the UI's store handle.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app_impl.h"
#include "input.h"
#include "term.h"
#include "view.h"
#include "../data/store.h"

// ---- the list pane (/sessions, /search) -----------------------------------------------------

static int open_store(struct app *a)
{
    char err[1024];
    if (!a->st && store_open(&a->st, a->w.db_path, 0, err, sizeof err) != STATUS_OK) {
        a->st = NULL;
        app_notice(a, VIEW_ERROR, err);
    }
    return a->st ? 0 : -1;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return 1;
    for (; hay && *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

void app_pane_close(struct app *a)
{
    a->pane = PANE_NONE;
    free(a->pane_ids);
    a->pane_ids = NULL;
    a->pane_n = 0;
    view_list(a->v, NULL, NULL, -1, 0);
}

void app_pane_fill(struct app *a, const char *query)
{
    char **items = NULL, title[160];
    size_t n = 0, k = 0;
    free(a->pane_ids);
    a->pane_ids = NULL;
    if (open_store(a))
        return;
    if (a->pane == PANE_SESSIONS) {
        struct store_session *v = NULL;
        store_session_list(a->st, 500, &v, &n);
        items = calloc(n + 1, sizeof *items);
        a->pane_ids = calloc(n + 1, sizeof *a->pane_ids);
        for (size_t i = 0; items && a->pane_ids && i < n; i++) {
            char line[256], id[24];
            snprintf(id, sizeof id, "%lld", (long long)v[i].id);
            if (!contains_ci(v[i].name, query) && !contains_ci(v[i].preview, query) &&
                strcmp(id, query) != 0)
                continue;
            snprintf(line, sizeof line, "%-5s %-16s %3lld msgs  %s", id,
                     v[i].name ? v[i].name : "-", (long long)v[i].n_messages,
                     v[i].preview ? v[i].preview : "");
            one_line(line);
            a->pane_ids[k] = v[i].id;
            items[k++] = strdup(line);
        }
        store_session_array_free(v, n);
        snprintf(title, sizeof title, " Sessions%s%s  (type to filter, arrows, Enter, Esc) ",
                 *query ? ": " : "", query);
    } else {
        struct store_hit *h = NULL;
        if (store_search(a->st, query, 0, 0, "*", "*", 100, &h, &n) != STATUS_OK)
            app_notice(a, VIEW_ERROR, store_errmsg(a->st));
        items = calloc(n + 1, sizeof *items);
        a->pane_ids = calloc(n + 1, sizeof *a->pane_ids);
        for (size_t i = 0; items && a->pane_ids && i < n; i++) {
            char line[320];
            snprintf(line, sizeof line, "%-5lld %-12s %s", (long long)h[i].session_id,
                     h[i].session_name ? h[i].session_name : "-", h[i].snippet);
            one_line(line);
            a->pane_ids[k] = h[i].session_id;
            items[k++] = strdup(line);
        }
        store_hit_array_free(h, n);
        if (k == 0) /* an empty box would look like a hang */
            snprintf(title, sizeof title, " Search: %s  (no matches; Esc) ", query);
        else
            snprintf(title, sizeof title, " Search: %s  (arrows, Enter opens, Esc) ", query);
    }
    a->pane_n = (int)k;
    if (a->pane_sel >= a->pane_n)
        a->pane_sel = a->pane_n > 0 ? a->pane_n - 1 : 0;
    view_list(a->v, title, (const char *const *)items, (int)k, a->pane_sel);
    for (size_t i = 0; i < k; i++)
        free(items[i]);
    free(items);
}

static void pane_open(struct app *a, int kind, const char *query)
{
    a->pane = kind;
    a->pane_sel = 0;
    snprintf(a->pane_filter, sizeof a->pane_filter, "%s", query ? query : "");
    app_pane_fill(a, a->pane_filter);
}

// ---- commands -----------------------------------------------------------------------------

int64_t app_parse_id(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return end != s && *end == 0 && v > 0 ? (int64_t)v : 0;
}

static void cmd_export(struct app *a, const char *arg)
{
    char fmt[16] = "md", file[1024] = "";
    enum store_format f;
    sscanf(arg, "%15s %1023s", fmt, file);
    if (store_format_parse(fmt, &f) != STATUS_OK) {
        app_note(a, "%s", "usage: /export md|json [FILE]");
        return;
    }
    if (!a->stats.session_id || open_store(a)) {
        app_note(a, "%s", "nothing to export (no saved session)");
        return;
    }
    if (!file[0])
        snprintf(file, sizeof file, "kfchat-%lld.%s", (long long)a->stats.session_id,
                 f == STORE_FORMAT_JSON ? "json" : "md");
    char *out = NULL;
    if (store_export_session(a->st, a->stats.session_id, f, 0, &out) != STATUS_OK) {
        app_notice(a, VIEW_ERROR, store_errmsg(a->st));
        return;
    }
    FILE *fp = fopen(file, "w");
    if (!fp || fputs(out, fp) < 0 || fclose(fp) != 0)
        app_note(a, "cannot write %s", file);
    else
        app_note(a, "exported to %s", file);
    free(out);
}

/* Let the user edit text in $EDITOR; returns the new text (malloc'd) or NULL. */
static char *run_editor(const char *text)
{
    char path[] = "/tmp/kfchat-edit-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    if (write(fd, text, strlen(text)) < 0) {
    }
    close(fd);
    const char *ed = getenv("VISUAL");
    if (!ed || !*ed)
        ed = getenv("EDITOR");
    if (!ed || !*ed)
        ed = "vi";
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "%s '%s'", ed, path);
    term_pause();
    int rc = system(cmd);
    term_reinit();
    char *out = NULL;
    FILE *f = rc == 0 ? fopen(path, "r") : NULL;
    if (f) {
        size_t n;
        out = cli_read_all(f, &n);
        fclose(f);
        while (out && n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
            out[--n] = 0;
    }
    unlink(path);
    return out;
}

static void reconfigure(struct app *a, const char *what, const char *arg)
{
    struct worker *w = &a->w;
    pthread_mutex_lock(&w->mu);
    if (!strcmp(what, "policy")) {
        int p = kv_policy_from_name(arg);
        if (p < 0) {
            pthread_mutex_unlock(&w->mu);
            app_note(a, "unknown policy; one of: %s", kv_policy_names());
            return;
        }
        if (!w->cc.kv_set)
            w->cc.kv = kv_params_default();
        w->cc.kv.policy = (enum kv_policy)p;
        w->cc.kv_set = 1;
    } else {
        free(w->kv_budget);
        w->kv_budget = strdup(arg);
        if (!w->cc.kv_set) {
            w->cc.kv = kv_params_default();
            w->cc.kv_set = 1;
        }
    }
    pthread_mutex_unlock(&w->mu);
    a->loaded = 0;
    a->state = "loading";
    view_touch(a->v); /* show "loading" now, not at the worker's next event */
    worker_post(w, JOB_REOPEN, NULL, 0);
}

static void command(struct app *a, char *line)
{
    char *arg = line + strcspn(line, " \t");
    if (*arg)
        *arg++ = 0;
    arg += strspn(arg, " \t");
    const char *c = line + 1;
    struct worker *w = &a->w;
    if (!strcmp(c, "quit") || !strcmp(c, "exit") || !strcmp(c, "q")) {
        a->quit = 1;
    } else if (!strcmp(c, "help") || !strcmp(c, "?")) {
        view_help(a->v, 1);
    } else if (!strcmp(c, "kv")) {
        view_kv_toggle(a->v);
        w->want_kv = view_kv_on(a->v);
        if (w->want_kv)
            worker_post(w, JOB_KV, NULL, 0);
    } else if (!strcmp(c, "new")) {
        worker_post(w, JOB_NEW, w->system, 0);
    } else if (!strcmp(c, "sessions")) {
        pane_open(a, PANE_SESSIONS, arg);
    } else if (!strcmp(c, "search")) {
        if (*arg)
            pane_open(a, PANE_SEARCH, arg);
        else
            app_note(a, "%s", "usage: /search TEXT");
    } else if (!strcmp(c, "resume")) {
        int64_t id = app_parse_id(arg);
        if (id)
            worker_post(w, JOB_RESUME, NULL, id);
        else
            pane_open(a, PANE_SESSIONS, arg);
    } else if (!strcmp(c, "rename")) {
        worker_post(w, JOB_RENAME, *arg ? arg : NULL, 0);
    } else if (!strcmp(c, "delete")) {
        int64_t id = *arg ? app_parse_id(arg) : a->stats.session_id;
        if (!id) {
            app_note(a, "%s", "usage: /delete [ID] (no saved session)");
            return;
        }
        a->confirm_delete = id;
        char q[96];
        snprintf(q, sizeof q, "delete session %lld and all its messages? type y to confirm",
                 (long long)id);
        app_notice(a, VIEW_NOTICE, q);
    } else if (!strcmp(c, "fork")) {
        worker_post(w, JOB_FORK, *arg ? arg : NULL, 0);
    } else if (!strcmp(c, "regen")) {
        worker_post(w, JOB_REGEN, NULL, 0);
    } else if (!strcmp(c, "edit")) {
        char *t = NULL;
        if (!*arg) {
            int i = app_last_of(a->v, VIEW_USER);
            t = run_editor(i >= 0 ? view_msg_text(a->v, i, NULL) : "");
            view_touch(a->v);
        }
        if (*arg || (t && *t))
            worker_post(w, JOB_EDIT, *arg ? arg : t, 0);
        free(t);
    } else if (!strcmp(c, "system")) {
        pthread_mutex_lock(&w->mu);
        free(w->system);
        w->system = *arg ? strdup(arg) : NULL;
        pthread_mutex_unlock(&w->mu);
        app_note(a, "%s", "system prompt set: a new session starts with it");
        worker_post(w, JOB_NEW, w->system, 0);
    } else if (!strcmp(c, "policy") || !strcmp(c, "budget")) {
        if (*arg)
            reconfigure(a, c, arg);
        else
            app_note(a, "usage: %s", !strcmp(c, "policy") ? "/policy NAME" : "/budget N|N%|SIZE");
    } else if (!strcmp(c, "temp")) {
        char *end;
        float t = strtof(arg, &end);
        if (end == arg || t < 0 || t > 10) {
            app_note(a, "%s", "usage: /temp 0..10");
            return;
        }
        pthread_mutex_lock(&w->mu);
        w->cc.sp.temp = t;
        pthread_mutex_unlock(&w->mu);
        worker_post(w, JOB_SAMPLER, NULL, 0);
        app_note(a, "temperature %s", arg);
    } else if (!strcmp(c, "export")) {
        cmd_export(a, arg);
    } else if (!strcmp(c, "copy")) {
        int i = app_last_of(a->v, VIEW_ASSISTANT);
        size_t n;
        const char *t = i >= 0 ? view_msg_text(a->v, i, &n) : NULL;
        if (t) {
            term_osc52(t, n);
            app_note(a, "%s", "copied the last reply (OSC 52)");
        } else {
            app_note(a, "%s", "no reply to copy");
        }
    } else {
        app_note(a, "unknown command /%s (F1 or /help lists them)", c);
    }
}

void app_on_line(struct app *a, char *line)
{
    if (a->pane != PANE_NONE) {
        if (a->pane_n > 0 && a->pane_ids)
            worker_post(&a->w, JOB_RESUME, NULL, a->pane_ids[a->pane_sel]);
        app_pane_close(a);
        return;
    }
    if (a->confirm_delete) {
        int64_t id = a->confirm_delete;
        a->confirm_delete = 0;
        if ((line[0] == 'y' || line[0] == 'Y') && !open_store(a)) {
            if (store_session_delete(a->st, id) != STATUS_OK) {
                app_notice(a, VIEW_ERROR, store_errmsg(a->st));
            } else {
                app_note(a, "%s", "session deleted");
                if (id == a->stats.session_id)
                    worker_post(&a->w, JOB_NEW, a->w.system, 0);
            }
        } else {
            app_note(a, "%s", "not deleted");
        }
        return;
    }
    if (line[0] == '/' && line[1] != '/') {
        command(a, line);
        return;
    }
    if (line[0] == 0)
        return;
    view_scroll_end(a->v);
    worker_post(&a->w, JOB_TURN, line[0] == '/' ? line + 1 : line, 0);
}
