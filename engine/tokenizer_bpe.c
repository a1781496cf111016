/*
 * tokenizer_bpe.c — byte-level BPE ("gpt2" vocabularies): pre-tokenizer selection, merge table,
 * and the per-word merge loop.
 *
 * A fragment is decoded to code points (invalid UTF-8 becomes U+FFFD, as in llama.cpp), cut into
 * words by the pre-tokenizer's rules (unicode_split), and each word's UTF-8 bytes become one
 * symbol each, named by the string id of the byte's GPT-2 alphabet character.  The pair with the
 * lowest merge rank is merged first (ties: leftmost), through a min-heap per word; the table maps
 * (left id, right id) straight to (rank, id of the result), so no strings are built while
 * merging.  With ignore_merges (llama3) a word that is itself a token is emitted whole.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "status.h"
#include "tokenizer_impl.h"

#define KEY_MERGES "tokenizer.ggml.merges"

// ---- pre-tokenizers -----------------------------------------------------------------------

enum pre_flags {
    PRE_IGNORE_MERGES = 1,
    PRE_ADD_BOS = 2,
};

struct pre_def {
    const char *names; /* NUL-separated aliases, as tokenizer.ggml.pre spells them */
    int flags;
    enum unicode_rule rules[TOKENIZER_MAX_RULES];
    int n_rules;
};

/* Regex lists from llama.cpp's llm_tokenizer_bpe; see enum unicode_rule for each rule. */
static const struct pre_def pre_defs[] = {
    {"default\0", 0,
     {UNICODE_RULE_PUNCT, UNICODE_RULE_GPT2, UNICODE_RULE_NUMBERS, UNICODE_RULE_DIGIT3}, 4},
    {"llama3\0llama-v3\0llama-bpe\0falcon3\0falcon-h1\0pixtral\0midm-2.0\0lfm2\0",
     PRE_IGNORE_MERGES | PRE_ADD_BOS, {UNICODE_RULE_LLAMA3}, 1},
    {"dbrx\0smaug-bpe\0", 0, {UNICODE_RULE_LLAMA3}, 1},
    {"qwen2\0deepseek-r1-qwen\0megrez\0stablelm2\0hunyuan\0", 0, {UNICODE_RULE_QWEN2}, 1},
    {"smollm\0starcoder\0refact\0command-r\0codeshell\0exaone\0minerva-7b\0", 0,
     {UNICODE_RULE_NUMBER, UNICODE_RULE_GPT2}, 2},
    {"gpt-2\0phi-2\0mpt\0olmo\0jais\0jina-es\0jina-de\0jina-v2-es\0jina-v2-de\0gigachat\0"
     "exaone4\0trillion\0granite-docling\0a.x-4.0\0mellum\0",
     0, {UNICODE_RULE_GPT2}, 1},
    {"falcon\0", 0, {UNICODE_RULE_PUNCT_FALCON, UNICODE_RULE_GPT2, UNICODE_RULE_DIGIT3}, 3},
    {"deepseek-llm\0", 0,
     {UNICODE_RULE_NEWLINE, UNICODE_RULE_DSK_LETTERS, UNICODE_RULE_DSK_PUNCT,
      UNICODE_RULE_TRAILING_SPACE, UNICODE_RULE_CJK, UNICODE_RULE_NUMBERS},
     6},
    {"deepseek-coder\0", 0,
     {UNICODE_RULE_NEWLINE, UNICODE_RULE_SPACE_LETTERS, UNICODE_RULE_SPACE_PUNCT,
      UNICODE_RULE_CJK, UNICODE_RULE_NUMBER},
     5},
};

static int name_in(const char *names, const char *s, size_t n)
{
    for (; *names; names += strlen(names) + 1)
        if (strlen(names) == n && memcmp(names, s, n) == 0)
            return 1;
    return 0;
}

int tokenizer_bpe_set_pre(struct tokenizer *t, const char *pre, size_t pre_len)
{
    const struct pre_def *d = NULL;

    if (!pre) { /* llama.cpp warns loudly and uses the default; so do we, quietly */
        d = &pre_defs[0];
    } else {
        for (size_t i = 0; i < sizeof(pre_defs) / sizeof(pre_defs[0]) && !d; i++)
            if (name_in(pre_defs[i].names, pre, pre_len))
                d = &pre_defs[i];
        if (!d)
            return STATUS_UNSUPPORTED;
    }
    memcpy(t->rules, d->rules, sizeof(t->rules));
    t->n_rules = d->n_rules;
    t->ignore_merges = (d->flags & PRE_IGNORE_MERGES) != 0;
    t->add_bos = (d->flags & PRE_ADD_BOS) != 0;
    return STATUS_OK;
}

// ---- merge table --------------------------------------------------------------------------

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

const struct tokenizer_merge *tokenizer_merge_find(const struct tokenizer *t, int32_t left,
                                                   int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;

    if (!t->merges)
        return NULL;
    for (uint64_t i = mix64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (t->merges[i].key == UINT64_MAX)
            return NULL;
    }
}

/* Add a merge unless the pair is already there: the first (lowest) rank wins, as in llama.cpp. */
static void merge_insert(struct tokenizer *t, int32_t left, int32_t right, int32_t rank,
                         int32_t result)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint64_t i = mix64(key) & t->merge_mask;

    for (; t->merges[i].key != UINT64_MAX; i = (i + 1) & t->merge_mask)
        if (t->merges[i].key == key)
            return;
    t->merges[i] = (struct tokenizer_merge){key, rank, result};
}

/* One merge line "left right": split at the first space after the first byte. */
static int load_merge(struct tokenizer *t, const char *s, size_t n, int32_t rank, char **cat,
                      size_t *cat_cap)
{
    const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
    size_t nl, nr;
    int32_t l, r, res;
    int st;

    if (!sp)
        return STATUS_FORMAT;
    nl = (size_t)(sp - s);
    nr = n - nl - 1;
    if (nl + nr > *cat_cap) {
        char *c = realloc(*cat, nl + nr);
        if (!c)
            return STATUS_NOMEM;
        *cat = c;
        *cat_cap = nl + nr;
    }
    memcpy(*cat, s, nl);
    memcpy(*cat + nl, sp + 1, nr);
    /* parts and results that are not tokens get ids above n_vocab, so that merging can keep
     * working on ids; such a symbol is spelled out byte by byte at the end */
    if ((st = tokenizer_strtab_intern(&t->text, s, nl, &l)) != STATUS_OK ||
        (st = tokenizer_strtab_intern(&t->text, sp + 1, nr, &r)) != STATUS_OK ||
        (st = tokenizer_strtab_intern(&t->text, *cat, nl + nr, &res)) != STATUS_OK)
        return st;
    merge_insert(t, l, r, rank, res);
    return STATUS_OK;
}

int tokenizer_bpe_load(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    enum gguf_type et;
    uint64_t n, slots = 16;
    const void *data;
    char *cat = NULL;
    size_t cat_cap = 0;
    int st = gguf_get_arr(g, KEY_MERGES, &et, &n, &data);

    if (st == STATUS_NOT_FOUND)
        return status_set(err, errlen, st, "no %s in the file (a gpt2 vocabulary needs them)",
                          KEY_MERGES);
    if (st != STATUS_OK || et != GGUF_TYPE_STRING)
        return status_set(err, errlen, STATUS_FORMAT, "%s is not an array of strings", KEY_MERGES);
    if (n > INT32_MAX)
        return status_set(err, errlen, STATUS_FORMAT, "%s has %llu entries", KEY_MERGES,
                          (unsigned long long)n);
    while (slots < 2 * n)
        slots *= 2;
    if (!(t->merges = malloc(slots * sizeof(*t->merges))))
        return status_set(err, errlen, STATUS_NOMEM, "out of memory for %llu merges",
                          (unsigned long long)n);
    memset(t->merges, 0xFF, slots * sizeof(*t->merges));
    t->merge_mask = slots - 1;

    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        gguf_arr_str(g, KEY_MERGES, i, &s, &len);
        if ((st = load_merge(t, s, len, (int32_t)i, &cat, &cat_cap)) != STATUS_OK) {
            free(cat);
            if (st == STATUS_FORMAT)
                return status_set(err, errlen, st, "%s[%llu] = '%.*s' is not \"left right\"",
                                  KEY_MERGES, (unsigned long long)i, (int)(len > 40 ? 40 : len), s);
            return status_set(err, errlen, st, "out of memory loading merges");
        }
    }
    free(cat);

    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t k = unicode_utf8_encode(unicode_byte_to_cpt((unsigned char)b), u);
        t->byte_sym[b] = tokenizer_strtab_find(&t->text, u, k);
    }
    return STATUS_OK;
}

// ---- encoding -----------------------------------------------------------------------------

struct bpe_sym {
    int32_t prev, next; /* live list, -1 at the ends */
    int32_t id;         /* string id, -1 if the text is not in the table */
    uint32_t off, n;    /* bytes of the word; n == 0 once merged away */
};

struct bpe_pair {
    int32_t rank, left, right, result;
    uint32_t size;
};

/* Scratch space reused across the words of one fragment. */
struct bpe_work {
    struct bpe_sym *sym;
    size_t sym_cap;
    struct bpe_pair *heap;
    size_t heap_n, heap_cap;
    char *bytes;  /* the word's UTF-8 */
    size_t bytes_cap;
    char *spell;  /* the word in GPT-2's alphabet (ignore_merges lookups) */
    size_t spell_cap;
};

static int reserve(void **p, size_t elem, size_t need, size_t *cap)
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

/* a comes out before b: lower rank, then the leftmost */
static int pair_before(const struct bpe_pair *a, const struct bpe_pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(struct bpe_work *w, struct bpe_pair p)
{
    size_t i;

    if (reserve((void **)&w->heap, sizeof(*w->heap), w->heap_n + 1, &w->heap_cap))
        return STATUS_NOMEM;
    for (i = w->heap_n++; i > 0 && pair_before(&p, &w->heap[(i - 1) / 2]); i = (i - 1) / 2)
        w->heap[i] = w->heap[(i - 1) / 2];
    w->heap[i] = p;
    return STATUS_OK;
}

static struct bpe_pair heap_pop(struct bpe_work *w)
{
    struct bpe_pair top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, c;

    while ((c = 2 * i + 1) < w->heap_n) {
        if (c + 1 < w->heap_n && pair_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!pair_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    w->heap[i] = last;
    return top;
}

static int try_pair(const struct tokenizer *t, struct bpe_work *w, int32_t left, int32_t right)
{
    const struct tokenizer_merge *m;
    const struct bpe_sym *l, *r;

    if (left < 0 || right < 0)
        return STATUS_OK;
    l = &w->sym[left];
    r = &w->sym[right];
    if (l->id < 0 || r->id < 0 || !(m = tokenizer_merge_find(t, l->id, r->id)))
        return STATUS_OK;
    return heap_push(w, (struct bpe_pair){m->rank, left, right, m->result, l->n + r->n});
}

/* A symbol that is not a token: llama.cpp looks up each byte of its GPT-2 spelling as a
 * one-byte token and emits those that exist. */
static void emit_unknown(const struct tokenizer *t, const char *bytes, const struct bpe_sym *s,
                         struct tokenizer_out *out)
{
    for (uint32_t i = 0; i < s->n; i++) {
        char u[4];
        size_t k = unicode_utf8_encode(unicode_byte_to_cpt((unsigned char)bytes[s->off + i]), u);
        for (size_t j = 0; j < k; j++) {
            int32_t id = tokenizer_token_id(t, &u[j], 1);
            if (id >= 0)
                tokenizer_out_push(out, id);
        }
    }
}

/* ignore_merges: the whole word, spelled in GPT-2's alphabet, as one token if it is one. */
static int whole_word(const struct tokenizer *t, struct bpe_work *w, size_t n, int32_t *id)
{
    size_t k = 0;

    if (reserve((void **)&w->spell, 1, 2 * n, &w->spell_cap))
        return STATUS_NOMEM;
    for (size_t i = 0; i < n; i++)
        k += unicode_utf8_encode(unicode_byte_to_cpt((unsigned char)w->bytes[i]), w->spell + k);
    *id = tokenizer_token_id(t, w->spell, k);
    return STATUS_OK;
}

/* Merge the n bytes in w->bytes and emit the result. */
static int encode_word(const struct tokenizer *t, struct bpe_work *w, size_t n,
                       struct tokenizer_out *out)
{
    int32_t id;
    int st;

    if (t->ignore_merges) {
        if ((st = whole_word(t, w, n, &id)) != STATUS_OK)
            return st;
        if (id >= 0) {
            tokenizer_out_push(out, id);
            return STATUS_OK;
        }
    }
    if (reserve((void **)&w->sym, sizeof(*w->sym), n, &w->sym_cap))
        return STATUS_NOMEM;
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (struct bpe_sym){(int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1,
                                     t->byte_sym[(unsigned char)w->bytes[i]], (uint32_t)i, 1};
    w->heap_n = 0;
    for (size_t i = 1; i < n; i++)
        if ((st = try_pair(t, w, (int32_t)i - 1, (int32_t)i)) != STATUS_OK)
            return st;

    while (w->heap_n > 0) {
        struct bpe_pair p = heap_pop(w);
        struct bpe_sym *l = &w->sym[p.left], *r = &w->sym[p.right];

        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size)
            continue; /* stale: one side has merged with something else since */
        l->n += r->n;
        l->id = p.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = p.left;
        if ((st = try_pair(t, w, l->prev, p.left)) != STATUS_OK ||
            (st = try_pair(t, w, p.left, l->next)) != STATUS_OK)
            return st;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        if (w->sym[i].id >= 0 && w->sym[i].id < t->n_vocab)
            tokenizer_out_push(out, w->sym[i].id);
        else
            emit_unknown(t, w->bytes, &w->sym[i], out);
    }
    return STATUS_OK;
}

/* Decode, pre-tokenize, and hand each word to encode_word. */
int tokenizer_bpe_encode(const struct tokenizer *t, const char *text, size_t len,
                         struct tokenizer_out *out)
{
    struct unicode_pieces a = {0}, b = {0}, tmp;
    struct bpe_work w = {0};
    uint32_t *cpts = malloc(len * sizeof(*cpts) + 1);
    uint8_t *flags = malloc(len + 1);
    size_t n = 0, start = 0;
    struct unicode_text ut = {cpts, flags, 0};
    int st = STATUS_NOMEM;

    if (!cpts || !flags)
        goto done;
    for (size_t i = 0, used; i < len; i += used)
        cpts[n++] = unicode_utf8_decode(text + i, len - i, &used);
    for (size_t i = 0; i < n; i++)
        flags[i] = (uint8_t)unicode_flags(cpts[i]);
    ut.n = n;
    if ((st = unicode_pieces_push(&a, n)) != STATUS_OK)
        goto done;
    for (int r = 0; r < t->n_rules; r++) {
        b.n = 0;
        if ((st = unicode_split(t->rules[r], &ut, &a, &b)) != STATUS_OK)
            goto done;
        tmp = a, a = b, b = tmp;
    }

    for (size_t p = 0; p < a.n; p++) {
        size_t k = 0;
        if ((st = reserve((void **)&w.bytes, 1, 4 * a.len[p], &w.bytes_cap)) != STATUS_OK)
            goto done;
        for (size_t i = start; i < start + a.len[p]; i++)
            k += unicode_utf8_encode(cpts[i], w.bytes + k);
        if ((st = encode_word(t, &w, k, out)) != STATUS_OK)
            goto done;
        start += a.len[p];
    }
    st = STATUS_OK;
done:
    unicode_pieces_free(&a);
    unicode_pieces_free(&b);
    free(w.sym);
    free(w.heap);
    free(w.bytes);
    free(w.spell);
    free(cpts);
    free(flags);
    return st;
}
