/*
 * cmd_sessions.c — the saved sessions without the chat: `kfchat sessions` (list), `kfchat
 * export ID|NAME` (Markdown or JSON) and `kfchat search TEXT` (full-text search).  All three
 * open the database read-only, so they never change it, work beside a running chat, and give
 * a one-line error on a locked, damaged or newer database.  A database that does not exist
 * yet simply holds no sessions.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#ifdef HAVE_UI
#include "../data/store.h"

/* The database, read-only; NULL with *missing set when there is none yet (nothing printed),
 * NULL after a one-line error otherwise. */
static struct store *open_ro(int *missing)
{
    char path[4200];
    *missing = 0;
    if (cli_store_path(path, sizeof path) == STATUS_OK && access(path, F_OK) != 0 &&
        errno == ENOENT) {
        *missing = 1;
        return NULL;
    }
    return cli_open_store(1);
}

static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* s on one line, at most max characters (UTF-8 aware), "…" when cut. */
static void print_flat(FILE *f, const char *s, int max)
{
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if ((*p & 0xc0) != 0x80 && ++chars > max) {
            fputs("…", f);
            return;
        }
        fputc(*p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p, f);
    }
}

static void print_time(FILE *f, int64_t ms)
{
    char buf[32];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm))
        fputs(buf, f);
    else
        fputs("?", f);
}

/* The session named by key: a number is an id, anything else a name, and "last" (unless a
 * session has that name) the most recent one.  -1 after a message. */
static int64_t resolve(struct store *st, const char *key)
{
    struct store_session rec;
    char *end;
    long long id = strtoll(key, &end, 10);
    int rc = *end == 0 && id > 0 ? store_session_get(st, id, &rec) : STATUS_NOT_FOUND;
    if (rc == STATUS_NOT_FOUND)
        rc = store_session_find(st, key, &rec);
    if (rc == STATUS_NOT_FOUND && !strcmp(key, "last")) { /* the most recent one */
        struct store_session *v = NULL;
        size_t n = 0;
        rc = store_session_list(st, 1, &v, &n);
        if (rc == STATUS_OK && n) {
            rec = v[0];
            memset(&v[0], 0, sizeof v[0]);
        } else if (rc == STATUS_OK)
            rc = STATUS_NOT_FOUND;
        store_session_array_free(v, n);
    }
    if (rc == STATUS_NOT_FOUND) {
        fprintf(stderr, "kfchat: no saved session '%s' (see kfchat sessions)\n", key);
        return -1;
    }
    if (rc != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", store_errmsg(st));
        return -1;
    }
    int64_t r = rec.id;
    store_session_clear(&rec);
    return r;
}

// ---- sessions -----------------------------------------------------------------------------

static void list_table(const struct store_session *v, size_t n)
{
    int w = 4;
    for (size_t i = 0; i < n; i++)
        if (v[i].name && (int)strlen(v[i].name) > w)
            w = strlen(v[i].name) > 24 ? 24 : (int)strlen(v[i].name);
    printf("%-5s %-*s %5s  %-16s  %s\n", "ID", w, "NAME", "MSGS", "LAST ACTIVITY", "PREVIEW");
    for (size_t i = 0; i < n; i++) {
        printf("%-5lld %-*s %5lld  ", (long long)v[i].id, w, v[i].name ? v[i].name : "-",
               (long long)v[i].n_messages);
        print_time(stdout, v[i].updated_ms);
        fputs("  ", stdout);
        print_flat(stdout, v[i].preview, 50);
        putchar('\n');
    }
}

static void list_json(const struct store_session *v, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        printf("%s\n  {\"id\": %lld, \"name\": ", i ? "," : "", (long long)v[i].id);
        json_str(stdout, v[i].name);
        printf(", \"messages\": %lld, \"created_ms\": %lld, \"updated_ms\": %lld, "
               "\"forked_from\": %lld, \"model_path\": ",
               (long long)v[i].n_messages, (long long)v[i].created_ms,
               (long long)v[i].updated_ms, (long long)v[i].forked_from);
        json_str(stdout, v[i].model_path);
        fputs(", \"preview\": ", stdout);
        json_str(stdout, v[i].preview);
        putchar('}');
    }
    puts(n ? "\n]" : "]");
}

static int sessions_list(int argc, char **argv)
{
    int json = 0, limit = 0, missing;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--limit")) {
            if (cli_int(argv[i], i + 1 < argc ? argv[i + 1] : NULL, 1, 1 << 30, &limit))
                return 2;
            i++;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: kfchat sessions [--json] [-n LIMIT]\n"
                 "  The saved sessions, most recent first: id, name, messages (all branches),\n"
                 "  last activity and the first user message.");
            return 0;
        } else {
            fprintf(stderr, "kfchat: sessions: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    struct store *st = open_ro(&missing);
    if (!st && !missing)
        return 1;
    struct store_session *v = NULL;
    size_t n = 0;
    if (st && store_session_list(st, (size_t)limit, &v, &n) != STATUS_OK) {
        fprintf(stderr, "kfchat: %s\n", store_errmsg(st));
        store_close(st);
        return 1;
    }
    if (json)
        list_json(v, n);
    else if (n)
        list_table(v, n);
    store_session_array_free(v, n);
    store_close(st);
    return 0;
}

// ---- export -------------------------------------------------------------------------------

static int write_out(const char *file, const char *text)
{
    FILE *f = file ? fopen(file, "w") : stdout;
    if (!f) {
        fprintf(stderr, "kfchat: cannot write %s: %s\n", file, strerror(errno));
        return 1;
    }
    size_t len = strlen(text);
    int bad = fwrite(text, 1, len, f) != len;
    bad |= file ? fclose(f) != 0 : fflush(f) != 0;
    if (bad) {
        fprintf(stderr, "kfchat: cannot write %s: %s\n", file ? file : "the output",
                strerror(errno));
        return 1;
    }
    return 0;
}

static int sessions_export(int argc, char **argv)
{
    const char *key = NULL, *file = NULL;
    enum store_format fmt = STORE_FORMAT_MD;
    int flags = 0, missing;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(a, "--format") || !strcmp(a, "-f")) && v) {
            if (store_format_parse(v, &fmt) != STATUS_OK) {
                fprintf(stderr, "kfchat: --format needs md or json (got '%s')\n", v);
                return 2;
            }
            i++;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) {
            file = v;
            i++;
        } else if (!strcmp(a, "--all"))
            flags |= STORE_EXPORT_ALL;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: kfchat export ID|NAME|last [--format md|json] [-o FILE] [--all]\n"
                 "  A saved session as Markdown (default) or JSON, on standard output or FILE;\n"
                 "  the current branch, or with --all every branch.");
            return 0;
        } else if (a[0] != '-' && !key)
            key = a;
        else {
            fprintf(stderr, "kfchat: export: unknown option or missing value '%s'\n", a);
            return 2;
        }
    }
    if (!key) {
        fprintf(stderr, "kfchat: export needs a session id or name (see kfchat sessions)\n");
        return 2;
    }
    struct store *st = open_ro(&missing);
    if (!st) {
        if (missing)
            fprintf(stderr, "kfchat: no saved session '%s' (no sessions yet)\n", key);
        return 1;
    }
    char *out = NULL;
    int rc = 1;
    int64_t id = resolve(st, key);
    if (id > 0 && store_export_session(st, id, fmt, flags, &out) != STATUS_OK)
        fprintf(stderr, "kfchat: %s\n", store_errmsg(st));
    else if (id > 0)
        rc = write_out(file, out);
    free(out);
    store_close(st);
    return rc;
}

// ---- search -------------------------------------------------------------------------------

static void hits_print(const struct store_hit *h, size_t n, int json)
{
    if (json)
        putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (!json) {
            printf("%lld\t%lld\t%s\t", (long long)h[i].session_id, (long long)h[i].message_id,
                   store_role_name(h[i].role));
            print_flat(stdout, h[i].snippet, 200);
            putchar('\n');
            continue;
        }
        printf("%s\n  {\"session\": %lld, \"message\": %lld, \"session_name\": ", i ? "," : "",
               (long long)h[i].session_id, (long long)h[i].message_id);
        json_str(stdout, h[i].session_name);
        printf(", \"role\": \"%s\", \"created_ms\": %lld, \"snippet\": ",
               store_role_name(h[i].role), (long long)h[i].created_ms);
        json_str(stdout, h[i].snippet);
        putchar('}');
    }
    if (json)
        puts(n ? "\n]" : "]");
}

static int sessions_search(int argc, char **argv)
{
    char query[4096] = "";
    const char *in = NULL;
    int flags = 0, json = 0, limit = 50, missing;
    size_t qlen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fts"))
            flags |= STORE_SEARCH_FTS;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--session") && v)
            in = argv[++i];
        else if (!strcmp(a, "-n") || !strcmp(a, "--limit")) {
            if (cli_int(a, v, 1, 1 << 20, &limit))
                return 2;
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: kfchat search [--session ID|NAME] [--fts] [--json] [-n LIMIT] TEXT...\n"
                 "  Messages containing every word of TEXT (case and accents ignored), best first:\n"
                 "  session id, message id, role and the text around the match [marked].\n"
                 "  --fts: TEXT is FTS5 syntax (AND, OR, \"phrase\", prefix*).  Exit status 1\n"
                 "  when nothing matches.");
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kfchat: search: unknown option or missing value '%s'\n", a);
            return 2;
        } else {
            int k = snprintf(query + qlen, sizeof query - qlen, "%s%s", qlen ? " " : "", a);
            if (k < 0 || (size_t)k >= sizeof query - qlen) {
                fprintf(stderr, "kfchat: the search text is too long\n");
                return 2;
            }
            qlen += (size_t)k;
        }
    }
    if (!qlen) {
        fprintf(stderr, "kfchat: search needs a text\n");
        return 2;
    }
    struct store *st = open_ro(&missing);
    if (!st) {
        if (missing && json)
            puts("[]");
        return 1;
    }
    int64_t sid = in ? resolve(st, in) : 0;
    struct store_hit *h = NULL;
    size_t n = 0;
    int rc = 1;
    if (sid >= 0 && store_search(st, query, flags, sid, NULL, NULL, (size_t)limit, &h, &n) !=
                        STATUS_OK)
        fprintf(stderr, "kfchat: %s\n", store_errmsg(st));
    else if (sid >= 0) {
        hits_print(h, n, json);
        rc = n ? 0 : 1;
    }
    store_hit_array_free(h, n);
    store_close(st);
    return rc;
}

int cmd_sessions(int argc, char **argv)
{
    if (!strcmp(argv[0], "export"))
        return sessions_export(argc, argv);
    if (!strcmp(argv[0], "search"))
        return sessions_search(argc, argv);
    return sessions_list(argc, argv);
}

#else /* built without the session store */

int cmd_sessions(int argc, char **argv)
{
    (void)argc, (void)argv;
    cli_open_store(1); /* prints why */
    return 1;
}
#endif
