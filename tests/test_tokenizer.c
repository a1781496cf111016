/*
 * test_tokenizer.c — the tokenizer against llama.cpp's own test vectors, plus unit checks.
 *
 * For every $KF_TESTDATA/vocab/<name>.gguf that has <name>.gguf.inp / .out, each test string
 * (strings are separated by lines "__ggml_vocab_test__", exactly as llama.cpp's
 * test-tokenizer-0 splits them on "\n__ggml_vocab_test__\n") is encoded with
 * add_special = parse_special = 0 — what test-tokenizer-0 does — and must give exactly the ids
 * of the matching .out line.  Decoding the result must give the string back.  Vocab files
 * without vectors must load and round-trip a few strings.  Unit checks use tiny GGUF files
 * written here byte by byte, so they run without the test data too.
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "status.h"
#include "tap.h"
#include "tokenizer.h"
#include "unicode.h"

#define SEP "\n__ggml_vocab_test__\n"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Quote s for a diagnostic line: printable ASCII as is, the rest as \xNN. */
static const char *quote(const char *s, size_t n, char *buf, size_t cap)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        k += (size_t)(c >= 0x20 && c < 0x7F ? snprintf(buf + k, cap - k, "%c", c)
                                            : snprintf(buf + k, cap - k, "\\x%02X", c));
    }
    buf[k] = '\0';
    return buf;
}

static void ids_str(const int32_t *ids, int n, char *buf, size_t cap)
{
    size_t k = 0;

    buf[0] = '\0';
    for (int i = 0; i < n && k + 12 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, " %d", ids[i]);
}

static struct tokenizer *open_vocab(const char *path, char *err, size_t errlen, int *st)
{
    struct gguf *g;
    struct tokenizer *t = NULL;

    if ((*st = gguf_open(&g, path, err, errlen)) != STATUS_OK)
        return NULL;
    *st = tokenizer_open(&t, g, err, errlen);
    gguf_close(g); /* the tokenizer must not need it any more */
    return t;
}

/* Encode s; returns the count and a malloc'd array in *ids. */
static int encode(const struct tokenizer *t, const char *s, size_t n, int add_special,
                  int parse_special, int32_t **ids)
{
    int k = tokenizer_encode(t, s, n, add_special, parse_special, NULL, 0);

    *ids = NULL;
    if (k < 0)
        return k;
    *ids = malloc(((size_t)k + 1) * sizeof(**ids));
    return tokenizer_encode(t, s, n, add_special, parse_special, *ids, k);
}

/* detokenize(encode(s)) == s */
static int round_trips(const struct tokenizer *t, const char *s, size_t n)
{
    int32_t *ids;
    int k = encode(t, s, n, 0, 0, &ids), m, good;
    char *back;

    if (k < 0)
        return 0;
    m = tokenizer_detokenize(t, ids, k, 0, NULL, 0);
    back = malloc((size_t)m + 1);
    good = m >= 0 && tokenizer_detokenize(t, ids, k, 0, back, m + 1) == m && (size_t)m == n &&
           memcmp(back, s, n) == 0;
    free(back);
    free(ids);
    return good;
}

/* Run one vocab's .inp/.out vectors: one ok() for the ids, one for the round trip. */
static void check_vectors(const struct tokenizer *t, const char *name, char *inp, size_t inp_len,
                          char *outs)
{
    int n_case = 0, n_pass = 0, n_rt = 0, reported = 0;
    char *p = inp, *end = inp + inp_len, *line = outs;

    while (p < end) {
        char *sep = strstr(p, SEP), *nl;
        size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);
        int32_t want[1024], *got;
        int n_want = 0, n_got;

        nl = line ? strchr(line, '\n') : NULL;
        if (nl)
            *nl = '\0';
        for (char *q = line, *e; q && *q; q = e) {
            long v = strtol(q, &e, 10);
            if (e == q)
                break;
            if (n_want < 1024)
                want[n_want++] = (int32_t)v;
        }
        line = nl ? nl + 1 : NULL;

        n_got = encode(t, p, n, 0, 0, &got);
        n_case++;
        if (n_got == n_want && memcmp(got, want, (size_t)n_got * sizeof(*got)) == 0) {
            n_pass++;
        } else if (!reported++) {
            char q[512], a[2048], b[2048];
            ids_str(want, n_want, a, sizeof(a));
            ids_str(got, n_got < 0 ? 0 : n_got, b, sizeof(b));
            diag("%s: first mismatch on '%s'", name, quote(p, n, q, sizeof(q)));
            diag("  want%s", a);
            diag("  got %s", b);
        }
        n_rt += round_trips(t, p, n);
        free(got);
        p += n + (sep ? strlen(SEP) : 0);
    }
    ok(n_case > 0 && n_pass == n_case, "%s: %d/%d vectors match llama.cpp", name, n_pass, n_case);
    ok(n_rt == n_case, "%s: %d/%d vectors round-trip through detokenize", name, n_rt, n_case);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every vocab file in dir: load it, run its vectors if it has them. */
static void test_vocab_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *names[256];
    int n = 0;

    if (!d) {
        skip("no vocab directory");
        return;
    }
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".gguf") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);

    for (int i = 0; i < n; i++) {
        char path[4096], err[256] = "";
        char *inp, *out;
        size_t inp_len, out_len;
        struct tokenizer *t;
        int st;

        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path))
            continue;
        t = open_vocab(path, err, sizeof(err), &st);
        if (!ok(t != NULL, "load %s", names[i])) {
            diag("%s", err);
            continue;
        }
        inp = snprintf(path, sizeof(path), "%s/%s.inp", dir, names[i]) < (int)sizeof(path)
                  ? read_file(path, &inp_len) : NULL;
        out = snprintf(path, sizeof(path), "%s/%s.out", dir, names[i]) < (int)sizeof(path)
                  ? read_file(path, &out_len) : NULL;
        if (inp && out) {
            check_vectors(t, names[i], inp, inp_len, out);
        } else {
            static const char *const s[] = {"Hello world", " 你好，世界！", "tab\there\n\nend  ",
                                            "Äpfel 🦙 3333"};
            int good = 0;
            for (size_t k = 0; k < 4; k++)
                good += round_trips(t, s[k], strlen(s[k]));
            ok(good == 4, "%s (no vectors): %d/4 strings round-trip", names[i], good);
        }
        free(inp);
        free(out);
        tokenizer_close(t);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
}

// ---- tiny GGUF files written by hand --------------------------------------------------------

struct buf {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_u32(struct buf *b, uint32_t v)
{
    put(b, &v, 4); /* tests run on little-endian hosts, as GGUF is */
}

static void put_u64(struct buf *b, uint64_t v)
{
    put(b, &v, 8);
}

static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void kv_str(struct buf *b, const char *key, const char *v)
{
    put_str(b, key);
    put_u32(b, 8);
    put_str(b, v);
    b->n_kv++;
}

static void kv_u32(struct buf *b, const char *key, uint32_t v)
{
    put_str(b, key);
    put_u32(b, 4);
    put_u32(b, v);
    b->n_kv++;
}

static void kv_strs(struct buf *b, const char *key, const char *const *v, size_t n)
{
    put_str(b, key);
    put_u32(b, 9);
    put_u32(b, 8);
    put_u64(b, n);
    for (size_t i = 0; i < n; i++)
        put_str(b, v[i]);
    b->n_kv++;
}

static void kv_f32s(struct buf *b, const char *key, const float *v, size_t n)
{
    put_str(b, key);
    put_u32(b, 9);
    put_u32(b, 6);
    put_u64(b, n);
    put(b, v, n * 4);
    b->n_kv++;
}

static void kv_i32s(struct buf *b, const char *key, const int32_t *v, size_t n)
{
    put_str(b, key);
    put_u32(b, 9);
    put_u32(b, 5);
    put_u64(b, n);
    put(b, v, n * 4);
    b->n_kv++;
}

/* Write header + the kv pairs in b to a temp file and open a tokenizer on it. */
static int open_built(struct buf *b, struct tokenizer **t, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    int fd = -1, st = STATUS_IO;
    struct buf h = {0};
    struct gguf *g;
    FILE *f = NULL;

    *t = NULL;
    if (snprintf(path, sizeof(path), "%s/kf_test_tok_XXXXXX", tmp && *tmp ? tmp : "/tmp") <
            (int)sizeof(path) &&
        (fd = mkstemp(path)) >= 0 && (f = fdopen(fd, "wb"))) {
        put(&h, "GGUF", 4);
        put_u32(&h, 3);
        put_u64(&h, 0);
        put_u64(&h, b->n_kv);
        st = fwrite(h.p, 1, h.n, f) == h.n && fwrite(b->p, 1, b->n, f) == b->n ? STATUS_OK
                                                                              : STATUS_IO;
        st = fclose(f) == 0 ? st : STATUS_IO;
        if (st == STATUS_OK && (st = gguf_open(&g, path, err, errlen)) == STATUS_OK) {
            st = tokenizer_open(t, g, err, errlen);
            gguf_close(g);
        }
        unlink(path);
    } else if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(h.p);
    free(b->p); /* the next file starts empty */
    memset(b, 0, sizeof(*b));
    return st;
}

/* A small SPM vocabulary: bytes, letters, and merges whose scores decide the order. */
static const char *const spm_tokens[] = {
    "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA4>", "\xE2\x96\x81", "a", "b", "c",
    "ab", "bc", "\342\226\201a", "abc", "<|user|>",
};
static const float spm_scores[] = {0, 0, 0, 0, 0, 0, -1, -2, -2, -2, -5, -3, -4, -6, 0};
static const int32_t spm_types[] = {2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 3};
#define N_SPM (sizeof(spm_tokens) / sizeof(spm_tokens[0]))

static struct tokenizer *tiny_spm(void)
{
    struct buf b = {0};
    struct tokenizer *t;
    char err[256];

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, N_SPM);
    kv_f32s(&b, "tokenizer.ggml.scores", spm_scores, N_SPM);
    kv_i32s(&b, "tokenizer.ggml.token_type", spm_types, N_SPM);
    open_built(&b, &t, err, sizeof(err));
    return t;
}

static int ids_are(const struct tokenizer *t, const char *s, int add_special, int parse_special,
                   const int32_t *want, int n_want)
{
    int32_t *got;
    int n = encode(t, s, strlen(s), add_special, parse_special, &got);
    int good = n == n_want && memcmp(got, want, (size_t)n * sizeof(*got)) == 0;

    if (!good) {
        char a[512], b[512];
        ids_str(want, n_want, a, sizeof(a));
        ids_str(got, n < 0 ? 0 : n, b, sizeof(b));
        diag("'%s': want%s, got%s", s, a, b);
    }
    free(got);
    return good;
}

static void test_tiny_spm(void)
{
    struct tokenizer *t = tiny_spm();
    char piece[16];

    if (!ok(t != NULL, "tiny SPM vocabulary loads")) {
        return;
    }
    /* "▁abc": bc (-3) outscores ▁a (-4) and ab (-5), so b+c merge first, then ▁+a; "▁abc" is
     * not a token, so that is where it stops */
    ok(ids_are(t, "abc", 0, 0, (const int32_t[]){12, 11}, 2), "SPM merges by score");
    ok(ids_are(t, "abc", 1, 0, (const int32_t[]){1, 12, 11}, 3), "SPM adds BOS");
    /* "ä" is not a token: byte fallback to <0xC3><0xA4>; "\n" → <0x0A> */
    ok(ids_are(t, "\xC3\xA4\n", 0, 0, (const int32_t[]){6, 4, 5, 3}, 4), "SPM byte fallback");
    /* a character with no byte token at all falls back to <unk> */
    ok(ids_are(t, "z", 0, 0, (const int32_t[]){6, 0}, 2), "SPM unknown byte gives <unk>");
    /* control tokens are text unless parse_special; after one, the next fragment gets a space */
    ok(ids_are(t, "<|user|>a", 0, 1, (const int32_t[]){14, 12}, 2), "SPM special partition");
    ok(tokenizer_encode(t, "<|user|>a", 9, 0, 0, NULL, 0) > 2, "SPM control text not parsed");
    ok(tokenizer_token_to_piece(t, 4, 0, piece, sizeof(piece)) == 1 && piece[0] == '\xC3',
       "byte token gives its raw byte");
    ok(tokenizer_token_to_piece(t, 14, 0, piece, sizeof(piece)) == 0 &&
           tokenizer_token_to_piece(t, 14, 1, piece, sizeof(piece)) == 8,
       "control token renders only with special");
    ok(tokenizer_token_to_piece(t, 99, 0, piece, sizeof(piece)) == STATUS_INVALID,
       "token_to_piece rejects bad ids");
    ok(round_trips(t, "abc \xC3\xA4\n", 7), "SPM round trip strips the prefix space");
    ok(tokenizer_is_eog(t, 2) && !tokenizer_is_eog(t, 1) && tokenizer_bos(t) == 1,
       "SPM defaults: BOS 1, EOS 2 ends generation");
    ok(tokenizer_find(t, "bc") == 11 && tokenizer_find(t, "cb") == -1, "tokenizer_find");
    tokenizer_close(t);
}

static void test_bad_files(void)
{
    static const char *const toks[] = {"a", "b", "ab"};
    static const char *const dup[] = {"a", "b", "a"};
    static const char *const bad_merge[] = {"ab"};
    static const float two[] = {0, 0};
    struct tokenizer *t;
    struct buf b = {0};
    char err[256] = "";
    int st;

    kv_str(&b, "general.name", "nothing");
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_NOT_FOUND && t == NULL && strstr(err, "tokenizer.ggml.model"),
       "no tokenizer at all: clean error (%s)", err);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_NOT_FOUND && t == NULL && strstr(err, "tokenizer.ggml.tokens"),
       "no tokenizer.ggml.tokens: clean error (%s)", err);

    kv_str(&b, "tokenizer.ggml.model", "bert");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 3);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_UNSUPPORTED && strstr(err, "bert"), "unsupported model named (%s)", err);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 3);
    kv_f32s(&b, "tokenizer.ggml.scores", two, 2);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_FORMAT, "scores not one per token: %s", err);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 0);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_FORMAT, "empty vocabulary: %s", err);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", dup, 3);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_FORMAT, "duplicate token: %s", err);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 3);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 7);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_FORMAT, "special id out of range: %s", err);

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "gpt-2");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 3);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_NOT_FOUND && strstr(err, "merges"), "BPE without merges: %s", err);

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "gpt-2");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 3);
    kv_strs(&b, "tokenizer.ggml.merges", bad_merge, 1);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_FORMAT, "merge without a space: %s", err);

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "no-such-pre");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 3);
    st = open_built(&b, &t, err, sizeof(err));
    ok(st == STATUS_UNSUPPORTED && strstr(err, "no-such-pre"), "unknown pre-tokenizer: %s", err);
}

/* A tiny byte-level BPE vocabulary: merges that do and do not form tokens. */
static void test_tiny_bpe(void)
{
    static const char *const toks[] = {"a", "b", "c", "\xC4\xA0", "ab", "\304\240ab", "abc",
                                       "<|eot|>", "<|im_end|>"};
    static const char *const merges[] = {"a b", "\xC4\xA0 ab", "ab c", "c c", "cc c"};
    static const int32_t types[] = {1, 1, 1, 1, 1, 1, 1, 3, 3};
    struct tokenizer *t;
    struct buf b = {0};
    char err[256] = "";

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "gpt-2");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 9);
    kv_i32s(&b, "tokenizer.ggml.token_type", types, 9);
    kv_strs(&b, "tokenizer.ggml.merges", merges, 5);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 7);
    if (!ok(open_built(&b, &t, err, sizeof(err)) == STATUS_OK, "tiny BPE vocabulary loads")) {
        diag("%s", err);
        return;
    }
    ok(ids_are(t, "abc ab", 0, 0, (const int32_t[]){6, 5}, 2), "BPE merges by rank");
    /* "ccc": c+c → "cc" (not a token), cc+c → "ccc" (not a token): spelled out byte-wise */
    ok(ids_are(t, "ccc", 0, 0, (const int32_t[]){2, 2, 2}, 3), "BPE merge-only strings");
    ok(tokenizer_eot(t) == 8 && tokenizer_is_eog(t, 7) && tokenizer_is_eog(t, 8),
       "EOT found by text, EOS and EOT end generation");
    ok(!tokenizer_add_bos(t), "gpt-2 does not add BOS");
    tokenizer_close(t);
}

// ---- pre-tokenizer rules ------------------------------------------------------------------

/* Split s with the given rules and compare with the pieces in want, '|'-separated. */
static int splits_as(const enum unicode_rule *rules, int n_rules, const char *s, const char *want)
{
    size_t len = strlen(s), n = 0, start = 0;
    uint32_t cpts[256];
    uint8_t flags[256];
    struct unicode_pieces a = {0}, b = {0}, tmp;
    char got[1024] = "";
    size_t k = 0;
    int good;

    for (size_t i = 0, used; i < len && n < 256; i += used) {
        cpts[n] = unicode_utf8_decode(s + i, len - i, &used);
        flags[n] = (uint8_t)unicode_flags(cpts[n]);
        n++;
    }
    struct unicode_text text = {cpts, flags, n};
    unicode_pieces_push(&a, n);
    for (int r = 0; r < n_rules; r++) {
        b.n = 0;
        unicode_split(rules[r], &text, &a, &b);
        tmp = a, a = b, b = tmp;
    }
    for (size_t p = 0; p < a.n; p++) {
        if (p)
            got[k++] = '|';
        for (size_t i = start; i < start + a.len[p]; i++)
            k += unicode_utf8_encode(cpts[i], got + k);
        start += a.len[p];
    }
    got[k] = '\0';
    good = strcmp(got, want) == 0;
    if (!good)
        diag("split '%s': want '%s', got '%s'", s, want, got);
    unicode_pieces_free(&a);
    unicode_pieces_free(&b);
    return good;
}

static void test_rules(void)
{
    static const enum unicode_rule gpt2[] = {UNICODE_RULE_GPT2};
    static const enum unicode_rule llama3[] = {UNICODE_RULE_LLAMA3};
    static const enum unicode_rule qwen2[] = {UNICODE_RULE_QWEN2};
    const char *s = "Hello, y'all!  How\n\n  are 12345 I'M";

    ok(splits_as(gpt2, 1, s, "Hello|,| y|'|all|!| | How|\n\n | are| 12345| I|'|M"),
       "GPT-2 pre-tokenizer");
    ok(splits_as(llama3, 1, s, "Hello|,| y|'all|!| | How|\n\n| | are| |123|45| I|'M"),
       "llama3 pre-tokenizer (case-insensitive contractions, 3-digit groups)");
    ok(splits_as(qwen2, 1, s, "Hello|,| y|'all|!| | How|\n\n| | are| |1|2|3|4|5| I|'M"),
       "qwen2 pre-tokenizer (single digits)");
    ok(splits_as(llama3, 1, "a\t\t b ?!\r\n\u00a0x", "a|\t\t| b| ?!\r\n|\u00a0x"),
       "llama3: whitespace runs, punctuation takes trailing newlines");
    ok(unicode_cpt_to_byte(unicode_byte_to_cpt(' ')) == ' ' && unicode_byte_to_cpt(' ') == 0x120 &&
           unicode_byte_to_cpt('\n') == 0x10A && unicode_byte_to_cpt(0xAD) == 0x143 &&
           unicode_cpt_to_byte('A') == 'A' && unicode_cpt_to_byte(0x144) == -1,
       "GPT-2 byte alphabet");
}

// ---- checks on real vocabularies ------------------------------------------------------------

static struct tokenizer *vocab(const char *dir, const char *name)
{
    char path[4096], err[256];
    int st;

    if (snprintf(path, sizeof(path), "%s/ggml-vocab-%s.gguf", dir, name) >= (int)sizeof(path))
        return NULL;
    return open_vocab(path, err, sizeof(err), &st);
}

static void test_real_specials(const char *dir)
{
    struct tokenizer *phi = vocab(dir, "phi-3"), *gpt = vocab(dir, "gpt-2");
    const char *chat = "<|user|>\nHi there<|end|>\n<|assistant|>";
    int32_t *ids;
    int n;

    if (!phi || !gpt) {
        skip("phi-3 / gpt-2 vocab files missing");
        tokenizer_close(phi);
        tokenizer_close(gpt);
        return;
    }
    n = encode(phi, chat, strlen(chat), 1, 1, &ids);
    /* BOS, <|user|> (eats the newline after it), ▁Hi ▁there, <|end|>, <|assistant|> */
    ok(n == 6 && ids[0] == 1 && ids[1] == 32010 && ids[4] == 32007 && ids[5] == 32001,
       "phi-3 chat markers parse as single tokens (n=%d)", n);
    free(ids);
    n = encode(phi, chat, strlen(chat), 0, 0, &ids);
    ok(n > 10 && ids[1] != 32010, "without parse_special they are plain text");
    free(ids);
    ok(tokenizer_eot(phi) == 32007 && tokenizer_is_eog(phi, 32007) &&
           tokenizer_is_eog(phi, 32000) && !tokenizer_is_eog(phi, 32010),
       "phi-3 EOG: <|end|> and <|endoftext|>, not <|user|>");

    ok(ids_are(gpt, "<|endoftext|>", 0, 1, (const int32_t[]){50256}, 1) &&
           tokenizer_encode(gpt, "<|endoftext|>", 13, 0, 0, NULL, 0) > 1,
       "gpt-2 <|endoftext|> parses only with parse_special");
    ok(tokenizer_is_eog(gpt, 50256) && tokenizer_bos(gpt) == 50256, "gpt-2 EOG");

    /* snprintf convention and streaming bytes */
    {
        int32_t few[2];
        char buf[64], all[64] = "";
        const char *llama = "\xF0\x9F\xA6\x99"; /* 🦙: byte tokens in llama-spm */
        struct tokenizer *spm = vocab(dir, "llama-spm");
        int k = tokenizer_encode(gpt, "Hello world, again", 18, 0, 0, few, 2);
        ok(k == 4 && few[0] == 15496, "encode reports the full count when out is short");
        if (spm) {
            size_t m = 0;
            n = encode(spm, llama, 4, 0, 0, &ids);
            for (int i = 0; i < n; i++) {
                int p = tokenizer_token_to_piece(spm, ids[i], 0, buf, sizeof(buf));
                memcpy(all + m, buf, (size_t)p);
                m += (size_t)p;
            }
            ok(n == 5 && m == 5 && memcmp(all, " \xF0\x9F\xA6\x99", 5) == 0,
               "llama-spm byte fallback pieces are raw bytes");
            free(ids);
            tokenizer_close(spm);
        }
    }
    tokenizer_close(phi);
    tokenizer_close(gpt);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Encode speed on a long text (the vectors repeated to ~200 KB); reported, and bounded loosely
 * so that an accidental quadratic shows up as a failure. */
static void test_speed(const char *dir)
{
    static const char *const names[] = {"llama-spm", "gpt-2", "deepseek-llm", "starcoder"};
    char path[4096];
    size_t n_inp, len = 0;
    char *inp, *text;

    if (snprintf(path, sizeof(path), "%s/ggml-vocab-gpt-2.gguf.inp", dir) >= (int)sizeof(path) ||
        !(inp = read_file(path, &n_inp))) {
        skip("no text for the speed test");
        return;
    }
    text = malloc(200 * 1024 + n_inp);
    while (len < 200 * 1024) {
        memcpy(text + len, inp, n_inp);
        len += n_inp;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct tokenizer *t = vocab(dir, names[i]);
        double t0, dt;
        int n;
        if (!t)
            continue;
        t0 = now();
        n = tokenizer_encode(t, text, len, 1, 1, NULL, 0);
        dt = now() - t0;
        ok(n > 0 && dt < 10.0, "%s: %zu bytes -> %d tokens in %.1f ms (%.2f M tokens/s)",
           names[i], len, n, dt * 1e3, n / dt / 1e6);
        tokenizer_close(t);
    }
    free(text);
    free(inp);
}

int main(void)
{
    const char *env = getenv("KF_TESTDATA"), *src = getenv("KF_SRCDIR");
    char dir[4096];

    int n;

    if (env && *env)
        n = snprintf(dir, sizeof(dir), "%s/vocab", env);
    else if (src && *src)
        n = snprintf(dir, sizeof(dir), "%s/../shared/testdata/vocab", src);
    else
        n = snprintf(dir, sizeof(dir), "../shared/testdata/vocab");
    if (n >= (int)sizeof(dir))
        return skip_all("KF_TESTDATA path too long");

    test_rules();
    test_tiny_spm();
    test_tiny_bpe();
    test_bad_files();
    test_vocab_dir(dir);
    test_real_specials(dir);
    test_speed(dir);
    return done_testing();
}
