/*
 * store_export.c — a session as Markdown (to read or paste) or as JSON (for programs).
 *
 * The formatters are pure: they take the structs the getters fill and return a malloc'd
 * string, so they are tested without a database.  The JSON is strict: valid UTF-8 only
 * (invalid bytes become U+FFFD), every control character escaped, and U+2028/U+2029 escaped
 * too so that the output is also a valid JavaScript literal.  Times are given both as
 * milliseconds and as ISO 8601 UTC.  settings and sampler are JSON text chosen by the
 * application; they are exported as strings, since the store does not parse them.
 */
#include "config.h"
#include "store_impl.h"
#include "status.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- growing buffer -----------------------------------------------------------------------

/* A string being built; after an allocation failure, oom is set and appends do nothing. */
struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sbuf_grow(struct sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sbuf_put(struct sbuf *b, const char *s, size_t n)
{
    sbuf_grow(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sbuf_puts(struct sbuf *b, const char *s)
{
    sbuf_put(b, s, strlen(s));
}

static __attribute__((format(printf, 2, 3))) void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        sbuf_put(b, small, (size_t)n);
        return;
    }
    sbuf_grow(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Hand the string over: STATUS_NOMEM if anything failed. */
static int sbuf_finish(struct sbuf *b, char **out)
{
    sbuf_grow(b, 0);
    if (b->oom) {
        free(b->p);
        *out = NULL;
        return STATUS_NOMEM;
    }
    *out = b->p;
    return STATUS_OK;
}

#define TIME_BUF 64

/* ms since the epoch as "2024-05-01T10:00:00.123Z" into buf (TIME_BUF bytes). */
static const char *iso_time(int64_t ms, char *buf)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, TIME_BUF, "?");
        return buf;
    }
    snprintf(buf, TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return buf;
}

// ---- JSON ---------------------------------------------------------------------------------

/*
 * Length of the valid UTF-8 sequence at s (n bytes available) and its code point, or 0 if
 * the bytes there are not one: overlong forms, surrogates and code points past U+10FFFF
 * are invalid (RFC 3629).
 */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t min, c;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, c = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, c = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* s as a JSON string literal, or null for NULL. */
static void json_str(struct sbuf *b, const char *str)
{
    if (!str) {
        sbuf_puts(b, "null");
        return;
    }
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    sbuf_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i; /* copy plain ASCII in runs */
        while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
            run++;
        sbuf_put(b, (const char *)s + i, run - i);
        i = run;
        if (i >= n)
            break;
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        switch (len ? cp : 0xfffd) {
        case '"': sbuf_puts(b, "\\\""); break;
        case '\\': sbuf_puts(b, "\\\\"); break;
        case '\b': sbuf_puts(b, "\\b"); break;
        case '\f': sbuf_puts(b, "\\f"); break;
        case '\n': sbuf_puts(b, "\\n"); break;
        case '\r': sbuf_puts(b, "\\r"); break;
        case '\t': sbuf_puts(b, "\\t"); break;
        case 0x2028: sbuf_puts(b, "\\u2028"); break;
        case 0x2029: sbuf_puts(b, "\\u2029"); break;
        default:
            if (!len)
                sbuf_puts(b, "\\ufffd"); /* one replacement per invalid byte */
            else if (cp < 0x20 || cp == 0x7f)
                sbuf_printf(b, "\\u%04x", (unsigned)cp);
            else
                sbuf_put(b, (const char *)s + i, len);
        }
        i += len ? len : 1;
    }
    sbuf_put(b, "\"", 1);
}

static void json_time(struct sbuf *b, const char *key, int64_t ms)
{
    char t[TIME_BUF];
    sbuf_printf(b, "\"%s_ms\": %" PRId64 ", \"%s\": ", key, ms, key);
    json_str(b, iso_time(ms, t));
}

static void json_id_or_null(struct sbuf *b, int64_t id)
{
    if (id)
        sbuf_printf(b, "%" PRId64, id);
    else
        sbuf_puts(b, "null");
}

static void json_msg(struct sbuf *b, const struct store_msg *m)
{
    sbuf_printf(b, "    {\"id\": %" PRId64 ", \"parent_id\": ", m->id);
    json_id_or_null(b, m->parent_id);
    sbuf_printf(b, ", \"role\": \"%s\",\n     \"text\": ", store_role_name(m->role));
    json_str(b, m->text);
    sbuf_printf(b, ",\n     \"n_tokens\": %" PRId64 ", ", m->n_tokens);
    json_time(b, "created", m->created_ms);
    sbuf_puts(b, ", ");
    json_time(b, "finished", m->finished_ms);
    sbuf_puts(b, ",\n     \"model_hash\": ");
    json_str(b, m->gen.model_hash);
    sbuf_puts(b, ", \"template\": ");
    json_str(b, m->gen.template_name);
    sbuf_puts(b, ", \"sampler\": ");
    json_str(b, m->gen.sampler);
    sbuf_printf(b, ", \"seed\": %" PRIu64 ", \"kv_policy\": ", m->gen.seed);
    json_str(b, m->gen.kv_policy);
    sbuf_printf(b, ", \"kv_budget\": %" PRId64 "}", m->gen.kv_budget);
}

int store_export_json(const struct store_session *ss, const struct store_msg *v, size_t n,
                      char **out)
{
    struct sbuf b = {0};
    sbuf_printf(&b,
                "{\"format\": \"kfchat-session\", \"version\": 1,\n \"session\": {\"id\": %" PRId64
                ", \"name\": ",
                ss->id);
    json_str(&b, ss->name);
    sbuf_puts(&b, ", \"model_path\": ");
    json_str(&b, ss->model_path);
    sbuf_puts(&b, ", \"model_hash\": ");
    json_str(&b, ss->model_hash);
    sbuf_puts(&b, ",\n  \"settings\": ");
    json_str(&b, ss->settings);
    sbuf_puts(&b, ", \"forked_from\": ");
    json_id_or_null(&b, ss->forked_from);
    sbuf_puts(&b, ",\n  ");
    json_time(&b, "created", ss->created_ms);
    sbuf_puts(&b, ", ");
    json_time(&b, "updated", ss->updated_ms);
    sbuf_puts(&b, "},\n \"messages\": [");
    for (size_t i = 0; i < n; i++) {
        sbuf_puts(&b, i ? ",\n" : "\n");
        json_msg(&b, &v[i]);
    }
    sbuf_puts(&b, n ? "\n ]}\n" : "]}\n");
    return sbuf_finish(&b, out);
}

// ---- Markdown -----------------------------------------------------------------------------

/* s on one line: control characters (newlines in a name) become spaces. */
static void md_inline(struct sbuf *b, const char *s)
{
    for (; s && *s; s++) {
        char c = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
        sbuf_put(b, &c, 1);
    }
}

/* "YYYY-MM-DD HH:MM:SS UTC" for headings. */
static const char *md_time(int64_t ms, char *buf)
{
    iso_time(ms, buf);
    if (strlen(buf) >= 19) {
        buf[10] = ' ';
        strcpy(buf + 19, " UTC");
    }
    return buf;
}

static void md_msg(struct sbuf *b, const struct store_msg *m)
{
    static const char *const titles[] = {"System", "User", "Assistant"};
    char t[TIME_BUF];
    const char *title = (unsigned)m->role < 3 ? titles[m->role] : "?";
    sbuf_printf(b, "## %s · %s", title, md_time(m->created_ms, t));
    if (m->role == STORE_ROLE_ASSISTANT) {
        if (m->n_tokens)
            sbuf_printf(b, " · %" PRId64 " tokens", m->n_tokens);
        if (m->finished_ms > m->created_ms)
            sbuf_printf(b, " · %.1f s", (double)(m->finished_ms - m->created_ms) / 1000.0);
    }
    sbuf_puts(b, "\n\n");
    const char *text = m->text ? m->text : "";
    sbuf_puts(b, text);
    if (!*text || text[strlen(text) - 1] != '\n')
        sbuf_puts(b, "\n");
    /* Generation settings in a quiet line under the reply: reproducibility without noise. */
    if (m->role == STORE_ROLE_ASSISTANT &&
        (m->gen.model_hash || m->gen.template_name || m->gen.sampler || m->gen.kv_policy)) {
        sbuf_puts(b, "\n<sub>");
        const char *sep = "";
        if (m->gen.model_hash) {
            sbuf_puts(b, "model ");
            md_inline(b, m->gen.model_hash);
            sep = " · ";
        }
        if (m->gen.template_name) {
            sbuf_printf(b, "%stemplate ", sep);
            md_inline(b, m->gen.template_name);
            sep = " · ";
        }
        if (m->gen.sampler) {
            sbuf_printf(b, "%ssampler `", sep);
            md_inline(b, m->gen.sampler);
            sbuf_puts(b, "`");
            sep = " · ";
        }
        sbuf_printf(b, "%sseed %" PRIu64, sep, m->gen.seed);
        if (m->gen.kv_policy) {
            sbuf_puts(b, " · KV ");
            md_inline(b, m->gen.kv_policy);
            if (m->gen.kv_budget)
                sbuf_printf(b, " (budget %" PRId64 ")", m->gen.kv_budget);
        }
        sbuf_puts(b, "</sub>\n");
    }
}

int store_export_md(const struct store_session *ss, const struct store_msg *v, size_t n, char **out)
{
    struct sbuf b = {0};
    char t[TIME_BUF];
    sbuf_puts(&b, "# ");
    if (ss->name)
        md_inline(&b, ss->name);
    else
        sbuf_printf(&b, "Session %" PRId64, ss->id);
    sbuf_printf(&b, "\n\n- Session: %" PRId64 "\n", ss->id);
    if (ss->model_path && *ss->model_path) {
        sbuf_puts(&b, "- Model: ");
        md_inline(&b, ss->model_path);
        if (ss->model_hash && *ss->model_hash) {
            sbuf_puts(&b, " (");
            md_inline(&b, ss->model_hash);
            sbuf_puts(&b, ")");
        }
        sbuf_puts(&b, "\n");
    }
    sbuf_printf(&b, "- Created: %s\n", md_time(ss->created_ms, t));
    sbuf_printf(&b, "- Last activity: %s\n", md_time(ss->updated_ms, t));
    if (ss->forked_from)
        sbuf_printf(&b, "- Forked from message %" PRId64 "\n", ss->forked_from);
    for (size_t i = 0; i < n; i++) {
        sbuf_puts(&b, "\n");
        md_msg(&b, &v[i]);
    }
    return sbuf_finish(&b, out);
}

// ---- from the database --------------------------------------------------------------------

int store_format_parse(const char *name, enum store_format *out)
{
    if (name && (strcmp(name, "md") == 0 || strcmp(name, "markdown") == 0)) {
        *out = STORE_FORMAT_MD;
        return STATUS_OK;
    }
    if (name && strcmp(name, "json") == 0) {
        *out = STORE_FORMAT_JSON;
        return STATUS_OK;
    }
    return STATUS_INVALID;
}

int store_export_session(struct store *s, int64_t session_id, enum store_format format, int flags,
                         char **out)
{
    *out = NULL;
    struct store_session ss;
    struct store_msg *v = NULL;
    size_t n = 0;
    int64_t leaf = 0;
    /* Read in one transaction, so a writer in another process cannot slip in between. */
    int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_fail_db(s, rc, "export the session");
    rc = store_session_get(s, session_id, &ss);
    if (rc == STATUS_OK && (flags & STORE_EXPORT_ALL))
        rc = store_msg_list_all(s, session_id, &v, &n);
    else if (rc == STATUS_OK)
        rc = store_msg_latest_leaf(s, session_id, &leaf);
    if (rc == STATUS_OK && leaf)
        rc = store_msg_path(s, leaf, &v, &n);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc == STATUS_OK) {
        rc = format == STORE_FORMAT_JSON ? store_export_json(&ss, v, n, out)
                                         : store_export_md(&ss, v, n, out);
        if (rc != STATUS_OK)
            store_fail(s, rc, "cannot export the session: out of memory");
    }
    store_session_clear(&ss);
    store_msg_array_free(v, n);
    return rc;
}
