/*
 * tokenizer.c — loading a vocabulary from GGUF, special tokens, the encode pipeline and
 * decoding.  The model tokenizers proper are in tokenizer_spm.c and tokenizer_bpe.c.
 *
 * Loading follows llama.cpp's llama_vocab::load: model defaults first (SPM: BOS 1, EOS 2, UNK 0,
 * add BOS, add a space prefix; BPE: BOS = EOS = 11, no BOS, the pre-tokenizer's own flags), then
 * the file's overrides, then the end-of-generation set derived from token texts.  Unlike
 * llama.cpp, which warns and carries on, a file whose special ids point outside the vocabulary
 * is refused: generation would index past the embedding table.
 *
 * Encoding: special-token partition (longest candidate first, each one splitting every raw
 * fragment at all its occurrences), then the model tokenizer on each raw fragment, BOS / EOS
 * around the whole.
 */
#include "config.h"
#include "tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "status.h"
#include "tokenizer_impl.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"

// ---- string table -------------------------------------------------------------------------

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xC2B2AE3D27D4EB4Full);
    uint64_t v;

    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    return (uint32_t)(h ^ (h >> 32));
}

int32_t tokenizer_strtab_find(const struct tokenizer_strtab *st, const char *s, size_t n)
{
    uint32_t h, i;

    if (!st->slots)
        return -1;
    h = hash_bytes(s, n);
    for (i = h & st->mask;; i = (i + 1) & st->mask) {
        int32_t id = st->slots[i];
        const struct tokenizer_str *e;
        if (id < 0)
            return -1;
        e = &st->str[id];
        if (e->hash == h && e->len == n && memcmp(st->blob + e->off, s, n) == 0)
            return id;
    }
}

static int strtab_rehash(struct tokenizer_strtab *st, uint32_t nslots)
{
    int32_t *slots = malloc((size_t)nslots * sizeof(*slots));

    if (!slots)
        return STATUS_NOMEM;
    memset(slots, 0xFF, (size_t)nslots * sizeof(*slots));
    for (size_t id = 0; id < st->n; id++) {
        uint32_t i = st->str[id].hash & (nslots - 1);
        while (slots[i] >= 0)
            i = (i + 1) & (nslots - 1);
        slots[i] = (int32_t)id;
    }
    free(st->slots);
    st->slots = slots;
    st->mask = nslots - 1;
    return STATUS_OK;
}

static int grow(void **p, size_t elem, size_t need, size_t *cap)
{
    size_t c = *cap ? *cap : 64;
    void *q;

    if (need <= *cap)
        return STATUS_OK;
    while (c < need)
        c *= 2;
    if (!(q = realloc(*p, c * elem)))
        return STATUS_NOMEM;
    *p = q;
    *cap = c;
    return STATUS_OK;
}

int tokenizer_strtab_intern(struct tokenizer_strtab *st, const char *s, size_t n, int32_t *id)
{
    uint32_t h, i;

    if ((*id = tokenizer_strtab_find(st, s, n)) >= 0)
        return STATUS_OK;
    if (st->n >= INT32_MAX || st->blob_len + n + 1 > UINT32_MAX)
        return STATUS_NOMEM;
    /* keep the slots at most half full so that probe runs stay short */
    if (!st->slots || (uint64_t)(st->n + 1) * 2 > (uint64_t)st->mask + 1) {
        uint64_t nslots = st->slots ? ((uint64_t)st->mask + 1) * 2 : 1024;
        if (nslots > ((uint64_t)1 << 31) || strtab_rehash(st, (uint32_t)nslots) != STATUS_OK)
            return STATUS_NOMEM;
    }
    if (grow((void **)&st->str, sizeof(*st->str), st->n + 1, &st->cap) != STATUS_OK ||
        grow((void **)&st->blob, 1, st->blob_len + n + 1, &st->blob_cap) != STATUS_OK)
        return STATUS_NOMEM;

    h = hash_bytes(s, n);
    *id = (int32_t)st->n++;
    memcpy(st->blob + st->blob_len, s, n);
    st->blob[st->blob_len + n] = '\0';
    st->str[*id] = (struct tokenizer_str){(uint32_t)st->blob_len, (uint32_t)n, h};
    st->blob_len += n + 1;
    for (i = h & st->mask; st->slots[i] >= 0; i = (i + 1) & st->mask)
        ;
    st->slots[i] = *id;
    return STATUS_OK;
}

static void strtab_free(struct tokenizer_strtab *st)
{
    free(st->blob);
    free(st->str);
    free(st->slots);
}

// ---- loading ------------------------------------------------------------------------------

static int load_tokens(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    enum gguf_type et;
    uint64_t n, i, n_arr;
    const void *data;
    int st;

    st = gguf_get_arr(g, KEY_TOKENS, &et, &n, &data);
    if (st == STATUS_NOT_FOUND)
        return status_set(err, errlen, st, "no %s in the file: it has no vocabulary", KEY_TOKENS);
    if (st != STATUS_OK || et != GGUF_TYPE_STRING)
        return status_set(err, errlen, STATUS_FORMAT, "%s is not an array of strings", KEY_TOKENS);
    if (n == 0 || n > INT32_MAX)
        return status_set(err, errlen, STATUS_FORMAT, "%s has %llu tokens", KEY_TOKENS,
                          (unsigned long long)n);
    t->n_vocab = (int32_t)n;
    t->scores = calloc(n, sizeof(*t->scores));
    t->attr = malloc(n * sizeof(*t->attr));
    if (!t->scores || !t->attr)
        return status_set(err, errlen, STATUS_NOMEM, "out of memory loading %llu tokens",
                          (unsigned long long)n);

    for (i = 0; i < n; i++) {
        const char *s;
        size_t len;
        char empty[32];
        int32_t id;

        gguf_arr_str(g, KEY_TOKENS, i, &s, &len);
        if (len == 0) { /* as llama.cpp: give it a text nobody will type */
            len = (size_t)snprintf(empty, sizeof(empty), "[EMPTY_%llu]", (unsigned long long)i);
            s = empty;
        }
        if ((st = tokenizer_strtab_intern(&t->text, s, len, &id)) != STATUS_OK)
            return status_set(err, errlen, st, "out of memory loading the vocabulary");
        if ((uint64_t)id != i)
            return status_set(err, errlen, STATUS_FORMAT, "duplicate token '%.*s' (ids %d and %llu)",
                              (int)(len > 64 ? 64 : len), s, id, (unsigned long long)i);
        t->attr[i] = TOKEN_NORMAL;
    }

    st = gguf_get_arr(g, KEY_SCORES, &et, &n_arr, &data);
    if (st == STATUS_OK) {
        if (et != GGUF_TYPE_FLOAT32 && et != GGUF_TYPE_INT32 && et != GGUF_TYPE_FLOAT64)
            return status_set(err, errlen, STATUS_FORMAT, "%s is not numeric", KEY_SCORES);
        if (n_arr != n)
            return status_set(err, errlen, STATUS_FORMAT, "%s has %llu entries for %llu tokens",
                              KEY_SCORES, (unsigned long long)n_arr, (unsigned long long)n);
        for (i = 0; i < n; i++)
            t->scores[i] = (float)gguf_arr_f64(et, data, i);
    } else if (st != STATUS_NOT_FOUND) {
        return status_set(err, errlen, STATUS_FORMAT, "%s is not an array", KEY_SCORES);
    }

    st = gguf_get_arr(g, KEY_TYPES, &et, &n_arr, &data);
    if (st == STATUS_OK) {
        static const uint16_t attr_of[] = {TOKEN_UNDEFINED, TOKEN_NORMAL, TOKEN_UNKNOWN,
                                           TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED,
                                           TOKEN_BYTE};
        if (et == GGUF_TYPE_STRING || et == GGUF_TYPE_FLOAT32 || et == GGUF_TYPE_FLOAT64 ||
            et == GGUF_TYPE_BOOL)
            return status_set(err, errlen, STATUS_FORMAT, "%s is not an integer array", KEY_TYPES);
        if (n_arr != n)
            return status_set(err, errlen, STATUS_FORMAT, "%s has %llu entries for %llu tokens",
                              KEY_TYPES, (unsigned long long)n_arr, (unsigned long long)n);
        for (i = 0; i < n; i++) {
            int64_t ty = gguf_arr_i64(et, data, i);
            t->attr[i] = ty >= 0 && ty <= 6 ? attr_of[ty] : TOKEN_UNDEFINED;
        }
    } else if (st != STATUS_NOT_FOUND) {
        return status_set(err, errlen, STATUS_FORMAT, "%s is not an array", KEY_TYPES);
    }
    return STATUS_OK;
}

/*
 * Read special id key into *id.  A negative value means "none" (some converters write -1).  Out
 * of range is an error for the ids generation depends on; for the others it is ignored.
 */
static int load_special_id(struct tokenizer *t, const struct gguf *g, const char *key,
                           int32_t *id, int strict, char *err, size_t errlen)
{
    int64_t v;
    int st = gguf_get_i64(g, key, &v);

    if (st == STATUS_NOT_FOUND)
        return STATUS_OK;
    if (st != STATUS_OK)
        return status_set(err, errlen, STATUS_FORMAT, "%s is not an integer", key);
    if (v < 0) {
        *id = -1;
    } else if (v < t->n_vocab) {
        *id = (int32_t)v;
    } else if (strict) {
        return status_set(err, errlen, STATUS_FORMAT, "%s = %lld is outside the vocabulary (%d)",
                          key, (long long)v, t->n_vocab);
    }
    return STATUS_OK;
}

static void load_flag(const struct gguf *g, const char *key, int *flag)
{
    int v;
    if (gguf_get_bool(g, key, &v) == STATUS_OK)
        *flag = v != 0;
}

static int load_specials(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    int st;

    /* defaults that do not exist in this vocabulary are dropped, as llama.cpp does */
    if (t->bos >= t->n_vocab)
        t->bos = -1;
    if (t->eos >= t->n_vocab)
        t->eos = -1;
    if (t->unk >= t->n_vocab)
        t->unk = -1;
    if ((st = load_special_id(t, g, "tokenizer.ggml.bos_token_id", &t->bos, 1, err, errlen)) ||
        (st = load_special_id(t, g, "tokenizer.ggml.eos_token_id", &t->eos, 1, err, errlen)) ||
        (st = load_special_id(t, g, "tokenizer.ggml.eot_token_id", &t->eot, 1, err, errlen)) ||
        (st = load_special_id(t, g, "tokenizer.ggml.eom_token_id", &t->eom, 1, err, errlen)) ||
        (st = load_special_id(t, g, "tokenizer.ggml.unknown_token_id", &t->unk, 0, err, errlen)))
        return st;
    load_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    load_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
    load_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    if (t->add_bos && t->bos < 0)
        return status_set(err, errlen, STATUS_FORMAT, "the vocabulary adds a BOS token but has none");
    if (t->add_eos && t->eos < 0)
        return status_set(err, errlen, STATUS_FORMAT, "the vocabulary adds an EOS token but has none");
    return STATUS_OK;
}

/* "<｜end▁of▁sentence｜>" (fullwidth bars, U+2581 spaces) */
#define DEEPSEEK_EOS "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>"

/* Texts that end a turn, in the order we prefer them as "the" EOT token when the file does not
 * name one (llama.cpp takes whichever its hash map yields first). */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", DEEPSEEK_EOS, "<end_of_utterance>",
};

/* Texts that end generation (llama.cpp's list, less its model-specific exceptions). */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", DEEPSEEK_EOS, "<end_of_utterance>",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* EOT / EOM detection and the EOG set.  Tokens recognised by their text are made CONTROL so
 * that they never print and are only parsed from text on request. */
static void mark_eog(struct tokenizer *t)
{
    int32_t id;

    if (t->eot < 0) {
        for (size_t i = 0; i < N_OF(eot_texts) && t->eot < 0; i++)
            if ((id = tokenizer_find(t, eot_texts[i])) >= 0) {
                t->eot = id;
                t->attr[id] |= TOKEN_CONTROL;
            }
    }
    if (t->eom < 0 && (id = tokenizer_find(t, "<|eom_id|>")) >= 0) {
        t->eom = id;
        t->attr[id] |= TOKEN_CONTROL;
    }
    for (size_t i = 0; i < N_OF(eog_texts); i++)
        if ((id = tokenizer_find(t, eog_texts[i])) >= 0)
            t->attr[id] |= TOKEN_EOG | TOKEN_CONTROL;
    if (t->eos >= 0)
        t->attr[t->eos] |= TOKEN_EOG;
    if (t->eot >= 0)
        t->attr[t->eot] |= TOKEN_EOG;
    if (t->eom >= 0)
        t->attr[t->eom] |= TOKEN_EOG;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The partition candidates, and llama.cpp's per-model strip attributes: Phi-3's chat tokens eat
 * the whitespace that follows them. */
static int collect_specials(struct tokenizer *t, const struct gguf *g)
{
    const uint16_t mask = TOKEN_CONTROL | TOKEN_USER_DEFINED | TOKEN_UNKNOWN;
    const char *name;
    size_t name_len;
    uint64_t *keys;
    int32_t n = 0;

    for (int32_t id = 0; id < t->n_vocab; id++)
        n += (t->attr[id] & mask) != 0;
    if (n == 0)
        return STATUS_OK;
    t->special = malloc((size_t)n * sizeof(*t->special));
    keys = malloc((size_t)n * sizeof(*keys));
    if (!t->special || !keys) {
        free(keys);
        return STATUS_NOMEM;
    }
    /* longest text first, then lowest id: one integer sort key */
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & mask)
            keys[t->n_special++] = (uint64_t)(UINT32_MAX - t->text.str[id].len) << 32 | (uint32_t)id;
    qsort(keys, (size_t)n, sizeof(*keys), cmp_u64);
    for (int32_t i = 0; i < n; i++)
        t->special[i] = (int32_t)(keys[i] & 0xFFFFFFFFu);
    free(keys);

    if (gguf_get_str(g, "general.name", &name, &name_len) == STATUS_OK) {
        char low[64];
        size_t k = name_len < sizeof(low) - 1 ? name_len : sizeof(low) - 1;
        for (size_t i = 0; i < k; i++)
            low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        low[k] = '\0';
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
            int32_t id;
            for (int32_t i = 0; i < t->n_special; i++)
                t->attr[t->special[i]] |= TOKEN_RSTRIP;
            if ((id = tokenizer_find(t, "</s>")) >= 0)
                t->attr[id] |= TOKEN_RSTRIP;
            for (size_t i = 0; i < N_OF(keep); i++)
                if ((id = tokenizer_find(t, keep[i])) >= 0)
                    t->attr[id] &= (uint16_t)~TOKEN_RSTRIP;
        }
    }
    return STATUS_OK;
}

/* SPM byte fallback: <0xXX>, else a token that is the byte itself. */
static void spm_byte_tokens(struct tokenizer *t)
{
    static const char hex[] = "0123456789ABCDEF";

    for (int b = 0; b < 256; b++) {
        char s[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        char c = (char)b;
        int32_t id = tokenizer_token_id(t, s, 6);
        t->byte_token[b] = id >= 0 ? id : tokenizer_token_id(t, &c, 1);
    }
}

static int load_model(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    const char *model, *pre = NULL;
    size_t model_len, pre_len = 0;
    int st = gguf_get_str(g, KEY_MODEL, &model, &model_len);

    if (st == STATUS_NOT_FOUND)
        return status_set(err, errlen, st, "no %s in the file: it has no vocabulary", KEY_MODEL);
    if (st != STATUS_OK)
        return status_set(err, errlen, STATUS_FORMAT, "%s is not a string", KEY_MODEL);
    if (model_len == 5 && memcmp(model, "llama", 5) == 0) {
        t->kind = TOKENIZER_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = 1, t->add_space_prefix = 1;
    } else if (model_len == 4 && memcmp(model, "gpt2", 4) == 0) {
        t->kind = TOKENIZER_BPE;
        t->bos = 11, t->eos = 11, t->unk = -1; /* llama.cpp's placeholders */
        st = gguf_get_str(g, KEY_PRE, &pre, &pre_len);
        if (st != STATUS_OK && st != STATUS_NOT_FOUND)
            return status_set(err, errlen, STATUS_FORMAT, "%s is not a string", KEY_PRE);
        if (tokenizer_bpe_set_pre(t, st == STATUS_OK ? pre : NULL, pre_len) != STATUS_OK)
            return status_set(err, errlen, STATUS_UNSUPPORTED,
                              "BPE pre-tokenizer '%.*s' is not supported", (int)pre_len, pre);
    } else {
        return status_set(err, errlen, STATUS_UNSUPPORTED,
                          "tokenizer model '%.*s' is not supported (only llama/SPM and gpt2/BPE)",
                          (int)(model_len > 32 ? 32 : model_len), model);
    }
    memcpy(t->model, model, model_len);
    return STATUS_OK;
}

int tokenizer_open(struct tokenizer **out, const struct gguf *g, char *err, size_t errlen)
{
    struct tokenizer *t = calloc(1, sizeof(*t));
    int st;

    *out = NULL;
    if (!t)
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    t->eot = t->eom = -1;
    if ((st = load_model(t, g, err, errlen)) != STATUS_OK ||
        (st = load_tokens(t, g, err, errlen)) != STATUS_OK)
        goto fail;
    if (t->kind == TOKENIZER_BPE && (st = tokenizer_bpe_load(t, g, err, errlen)) != STATUS_OK)
        goto fail;
    if ((st = load_specials(t, g, err, errlen)) != STATUS_OK)
        goto fail;
    mark_eog(t);
    if ((st = collect_specials(t, g)) != STATUS_OK) {
        status_set(err, errlen, st, "out of memory");
        goto fail;
    }
    if (t->kind == TOKENIZER_SPM)
        spm_byte_tokens(t);
    *out = t;
    return STATUS_OK;
fail:
    tokenizer_close(t);
    return st;
}

void tokenizer_close(struct tokenizer *t)
{
    if (!t)
        return;
    strtab_free(&t->text);
    free(t->scores);
    free(t->attr);
    free(t->special);
    free(t->merges);
    free(t);
}

// ---- encoding -----------------------------------------------------------------------------

/* A stretch of the input: raw text (id < 0) or a special token found in it. */
struct frag {
    size_t off, len;
    int32_t id;
};

struct frags {
    struct frag *v;
    size_t n, cap;
};

static int frags_push(struct frags *f, size_t off, size_t len, int32_t id)
{
    if (grow((void **)&f->v, sizeof(*f->v), f->n + 1, &f->cap) != STATUS_OK)
        return STATUS_NOMEM;
    f->v[f->n++] = (struct frag){off, len, id};
    return STATUS_OK;
}

/* First occurrence of needle (m > 0 bytes) in hay[0..n), or NULL. */
static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m)
{
    const char *p = hay, *end = hay + n;

    while ((size_t)(end - p) >= m && (p = memchr(p, needle[0], (size_t)(end - p) - m + 1))) {
        if (memcmp(p + 1, needle + 1, m - 1) == 0)
            return p;
        p++;
    }
    return NULL;
}

/* isspace() in the C locale, whatever locale the program runs in */
static int is_space_c(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Split raw fragment f at every occurrence of special token id into next. */
static int split_at_special(const struct tokenizer *t, const char *text, const struct frag *f,
                            int32_t id, struct frags *next)
{
    const char *s = t->text.blob + t->text.str[id].off;
    size_t n = t->text.str[id].len, pos = f->off, end = f->off + f->len;
    uint16_t attr = t->attr[id];

    while (pos < end) {
        const char *m = find_bytes(text + pos, end - pos, s, n);
        size_t at, left;

        if (!m)
            return frags_push(next, pos, end - pos, -1);
        at = (size_t)(m - text);
        left = at - pos;
        if (attr & TOKEN_LSTRIP)
            while (left > 0 && is_space_c(text[pos + left - 1]))
                left--;
        if ((left && frags_push(next, pos, left, -1)) || frags_push(next, at, n, id))
            return STATUS_NOMEM;
        pos = at + n;
        if (attr & TOKEN_RSTRIP)
            while (pos < end && is_space_c(text[pos]))
                pos++;
    }
    return STATUS_OK;
}

static int partition(const struct tokenizer *t, const char *text, size_t len, int parse_special,
                     struct frags *cur)
{
    struct frags next = {0};
    uint8_t *pairs = NULL;
    int st = STATUS_OK;

    if (len == 0)
        return STATUS_OK;
    if (frags_push(cur, 0, len, -1))
        return STATUS_NOMEM;
    /* which byte pairs occur: rejects most candidates without searching the text */
    if (t->n_special > 0 && len >= 2) {
        if (!(pairs = calloc(65536 / 8, 1)))
            return STATUS_NOMEM;
        for (size_t i = 0; i + 1 < len; i++) {
            unsigned k = (unsigned char)text[i] << 8 | (unsigned char)text[i + 1];
            pairs[k >> 3] |= (uint8_t)(1u << (k & 7));
        }
    }
    for (int32_t k = 0; k < t->n_special && st == STATUS_OK; k++) {
        int32_t id = t->special[k];
        const unsigned char *s = (const unsigned char *)t->text.blob + t->text.str[id].off;
        size_t n = t->text.str[id].len;

        if (!parse_special && (t->attr[id] & (TOKEN_CONTROL | TOKEN_UNKNOWN)))
            continue;
        if (n > len)
            continue;
        if (n >= 2 && !(pairs[(s[0] << 8 | s[1]) >> 3] & (1u << ((s[0] << 8 | s[1]) & 7))))
            continue;
        if (!find_bytes(text, len, (const char *)s, n))
            continue;
        next.n = 0;
        for (size_t i = 0; i < cur->n && st == STATUS_OK; i++)
            st = cur->v[i].id >= 0 ? frags_push(&next, cur->v[i].off, cur->v[i].len, cur->v[i].id)
                                   : split_at_special(t, text, &cur->v[i], id, &next);
        struct frags tmp = *cur;
        *cur = next;
        next = tmp;
    }
    free(next.v);
    free(pairs);
    return st;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int add_special,
                     int parse_special, int32_t *out, int max_out)
{
    struct tokenizer_out o = {out, max_out > 0 ? max_out : 0, 0};
    struct frags frags = {0};
    int prev_special = 1; /* SPM: the first fragment gets the space prefix */
    int st = partition(t, text, len, parse_special, &frags);

    if (add_special && t->add_bos)
        tokenizer_out_push(&o, t->bos);
    for (size_t i = 0; i < frags.n && st == STATUS_OK; i++) {
        const struct frag *f = &frags.v[i];
        if (f->id >= 0) {
            tokenizer_out_push(&o, f->id);
            prev_special = 1;
            continue;
        }
        if (t->kind == TOKENIZER_SPM)
            st = tokenizer_spm_encode(t, text + f->off, f->len,
                                      t->add_space_prefix && prev_special, &o);
        else
            st = tokenizer_bpe_encode(t, text + f->off, f->len, &o);
        prev_special = 0;
    }
    if (add_special && t->add_eos)
        tokenizer_out_push(&o, t->eos);
    free(frags.v);
    if (st != STATUS_OK)
        return st;
    return o.n > INT_MAX ? STATUS_INVALID : (int)o.n;
}

// ---- decoding -----------------------------------------------------------------------------

/* Output into a bounded buffer that keeps counting past its end.  skip_space drops one
 * leading ' ' from the next piece (llama.cpp's lstrip in detokenize). */
struct sink {
    char *buf;
    size_t cap, n;
    int skip_space;
};

static void sink_put(struct sink *s, const char *p, size_t n)
{
    if (s->skip_space && n > 0) {
        s->skip_space = 0;
        if (p[0] == ' ')
            p++, n--;
    }
    if (s->n < s->cap)
        memcpy(s->buf + s->n, p, n < s->cap - s->n ? n : s->cap - s->n);
    s->n += n;
}

/* "<0xXX>" → XX, or -1 */
static int parse_byte_token(const char *s, size_t n)
{
    int v = 0;

    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int is_escaped_space(const char *s, size_t n)
{
    return n >= 3 && memcmp(s, "\xE2\x96\x81", 3) == 0;
}

static void put_piece(const struct tokenizer *t, int32_t id, int special, struct sink *out)
{
    const char *s = t->text.blob + t->text.str[id].off;
    size_t n = t->text.str[id].len;
    uint16_t a = t->attr[id];
    int b;

    if (a & (TOKEN_CONTROL | TOKEN_UNKNOWN)) {
        if (special)
            sink_put(out, s, n);
    } else if (a & TOKEN_USER_DEFINED) {
        sink_put(out, s, n); /* user text, never escaped */
    } else if ((a & TOKEN_NORMAL) && t->kind == TOKENIZER_SPM) {
        for (size_t i = 0, j; i < n; i = j) {
            if (is_escaped_space(s + i, n - i)) {
                sink_put(out, " ", 1);
                j = i + 3;
                continue;
            }
            for (j = i; j < n && !is_escaped_space(s + j, n - j); j++)
                ;
            sink_put(out, s + i, j - i);
        }
    } else if (a & TOKEN_NORMAL) {
        /* byte-level: every code point stands for one byte; anything else is copied as is */
        for (size_t i = 0, used; i < n; i += used) {
            uint32_t cp = unicode_utf8_decode(s + i, n - i, &used);
            int byte = unicode_cpt_to_byte(cp);
            char c = (char)byte;
            if (byte < 0)
                sink_put(out, s + i, used);
            else
                sink_put(out, &c, 1);
        }
    } else if ((a & TOKEN_BYTE) && (b = parse_byte_token(s, n)) >= 0) {
        char c = (char)b;
        sink_put(out, &c, 1);
    }
    /* unused and undefined tokens render as nothing, as in llama.cpp */
}

int tokenizer_token_to_piece(const struct tokenizer *t, int32_t id, int special, char *buf,
                             int len)
{
    struct sink s = {buf, len > 0 ? (size_t)len : 0, 0, 0};

    if (id < 0 || id >= t->n_vocab)
        return STATUS_INVALID;
    put_piece(t, id, special, &s);
    return s.n > INT_MAX ? STATUS_INVALID : (int)s.n;
}

int tokenizer_detokenize(const struct tokenizer *t, const int32_t *ids, int n, int special,
                         char *buf, int len)
{
    /* encode put one space in front of the text; take it back from the first piece */
    struct sink s = {buf, len > 0 ? (size_t)len : 0, 0, t->add_space_prefix};

    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return STATUS_INVALID;
        put_piece(t, ids[i], special, &s);
        s.skip_space = 0; /* only ever the first piece, even if it was empty */
    }
    if (s.n < s.cap)
        buf[s.n] = '\0';
    return s.n > INT_MAX ? STATUS_INVALID : (int)s.n;
}

// ---- vocabulary facts ---------------------------------------------------------------------

int tokenizer_n_vocab(const struct tokenizer *t)
{
    return t->n_vocab;
}

int32_t tokenizer_bos(const struct tokenizer *t)
{
    return t->bos;
}

int32_t tokenizer_eos(const struct tokenizer *t)
{
    return t->eos;
}

int32_t tokenizer_eot(const struct tokenizer *t)
{
    return t->eot;
}

int tokenizer_add_bos(const struct tokenizer *t)
{
    return t->add_bos;
}

int tokenizer_add_eos(const struct tokenizer *t)
{
    return t->add_eos;
}

const char *tokenizer_model(const struct tokenizer *t)
{
    return t->model;
}

int tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOKEN_EOG) != 0;
}

int32_t tokenizer_find(const struct tokenizer *t, const char *text)
{
    return tokenizer_token_id(t, text, strlen(text));
}

const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->text.str[id].len;
    return t->text.blob + t->text.str[id].off;
}
