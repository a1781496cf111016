/*
 * tokenizer_spm.c — SentencePiece BPE as llama.cpp runs it for "llama" vocabularies.
 *
 * The fragment (with one leading space when the pipeline asks for it) has every ' ' replaced by
 * U+2581 and is cut into UTF-8 characters.  Then, repeatedly, the adjacent pair whose
 * concatenation is the highest-scoring token is merged (ties: leftmost), using a max-heap of
 * candidate pairs that is refilled around each merge; stale entries are recognised because a
 * pair's byte length no longer matches.  Whatever is left that is not a token goes out as byte
 * tokens <0xXX>.  A whole fragment is one merge domain (SPM has no pre-tokenizer), so the heap
 * keeps long prompts at O(n log n).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "tokenizer_impl.h"

struct spm_sym {
    int32_t prev, next; /* neighbours in the live list, -1 at the ends */
    uint32_t off, n;    /* bytes of the escaped text; n == 0 once merged away */
};

struct spm_pair {
    float score;
    int32_t left, right;
    uint32_t size; /* byte length of the pair when it was queued */
};

struct spm_heap {
    struct spm_pair *v;
    size_t n, cap;
};

/* a comes out before b: higher score, then the leftmost */
static int pair_before(const struct spm_pair *a, const struct spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct spm_heap *h, struct spm_pair p)
{
    size_t i;

    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        struct spm_pair *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return STATUS_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    for (i = h->n++; i > 0 && pair_before(&p, &h->v[(i - 1) / 2]); i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = p;
    return STATUS_OK;
}

static struct spm_pair heap_pop(struct spm_heap *h)
{
    struct spm_pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0, c;

    while ((c = 2 * i + 1) < h->n) {
        if (c + 1 < h->n && pair_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!pair_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = last;
    return top;
}

/* Queue (left, right) if their concatenation is a token. */
static int try_pair(const struct tokenizer *t, const char *text, const struct spm_sym *sym,
                    int32_t left, int32_t right, struct spm_heap *h)
{
    uint32_t size;
    int32_t id;

    if (left < 0 || right < 0)
        return STATUS_OK;
    size = sym[left].n + sym[right].n;
    if ((id = tokenizer_token_id(t, text + sym[left].off, size)) < 0)
        return STATUS_OK;
    return heap_push(h, (struct spm_pair){t->scores[id], left, right, size});
}

/* Emit one final symbol: its token, or its bytes. */
static void emit_symbol(const struct tokenizer *t, const char *text, const struct spm_sym *s,
                        struct tokenizer_out *out)
{
    int32_t id = tokenizer_token_id(t, text + s->off, s->n);

    if (id >= 0) {
        tokenizer_out_push(out, id);
        return;
    }
    for (uint32_t i = 0; i < s->n; i++) {
        /* a vocabulary with neither <0xXX> nor the byte itself gets UNK, as sentencepiece
         * does (llama.cpp would throw) */
        int32_t b = t->byte_token[(unsigned char)text[s->off + i]];
        if (b < 0)
            b = t->unk;
        if (b >= 0)
            tokenizer_out_push(out, b);
    }
}

/* The fragment with ' ' → U+2581, and the prefix space if asked for. */
static char *escape_spaces(const char *text, size_t len, int prefix_space, size_t *out_len)
{
    char *esc = malloc(3 * len + 3);
    size_t n = 0;

    if (!esc)
        return NULL;
    if (prefix_space) {
        memcpy(esc, "\xE2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            esc[n++] = text[i];
        }
    }
    *out_len = n;
    return esc;
}

int tokenizer_spm_encode(const struct tokenizer *t, const char *text, size_t len,
                         int prefix_space, struct tokenizer_out *out)
{
    struct spm_heap heap = {0};
    struct spm_sym *sym = NULL;
    size_t n_esc, off;
    int32_t n_sym = 0;
    int st = STATUS_NOMEM;
    char *esc;

    if (len > (UINT32_MAX - 3) / 3)
        return STATUS_INVALID;
    if (!(esc = escape_spaces(text, len, prefix_space, &n_esc)))
        return STATUS_NOMEM;
    if (n_esc == 0) {
        free(esc);
        return STATUS_OK;
    }
    if (!(sym = malloc(n_esc * sizeof(*sym))))
        goto done;

    /* one symbol per UTF-8 character, trusting the lead byte (a truncated one is cut short) */
    for (off = 0; off < n_esc; n_sym++) {
        size_t n = unicode_utf8_len((unsigned char)esc[off]);
        if (n > n_esc - off)
            n = n_esc - off;
        sym[n_sym] = (struct spm_sym){n_sym - 1, -1, (uint32_t)off, (uint32_t)n};
        if (n_sym > 0)
            sym[n_sym - 1].next = n_sym;
        off += n;
    }
    for (int32_t i = 1; i < n_sym; i++)
        if ((st = try_pair(t, esc, sym, i - 1, i, &heap)) != STATUS_OK)
            goto done;

    while (heap.n > 0) {
        struct spm_pair p = heap_pop(&heap);
        struct spm_sym *l = &sym[p.left], *r = &sym[p.right];

        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size)
            continue; /* one side changed since the pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = p.left;
        if ((st = try_pair(t, esc, sym, l->prev, p.left, &heap)) != STATUS_OK ||
            (st = try_pair(t, esc, sym, p.left, l->next, &heap)) != STATUS_OK)
            goto done;
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        emit_symbol(t, esc, &sym[i], out);
    st = STATUS_OK;
done:
    free(heap.v);
    free(sym);
    free(esc);
    return st;
}
