/*
 * engine.c — ties the GGUF file, the tokenizer, the chat template and the model together
 * behind engine.h, and keeps the last error message on the handle.
 */
#include "config.h"
#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "gguf.h"
#include "model.h"
#include "model_gpu.h"
#include "quant.h"
#include "tokenizer.h"

#define MAX_STOP 16

struct engine {
    struct model *model;
    struct tokenizer *tok;
    int fmt;                     /* enum chat_format */
    int32_t stop[MAX_STOP];      /* extra EOG ids from the chat format */
    int n_stop;
    char name[128];
    char fingerprint[17];
    size_t file_bytes;
    char errmsg[512];
};

static int fail(struct engine *e, int st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct engine *e, int st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->errmsg, sizeof e->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

const char *engine_errmsg(const struct engine *e)
{
    return e->errmsg;
}

static void setup_chat(struct engine *e, const struct gguf *g, const char *override)
{
    const char *tmpl;
    size_t len;
    e->fmt = CHAT_FORMAT_UNKNOWN;
    if (override)
        e->fmt = chat_template_from_name(override);
    else if (gguf_get_str(g, "tokenizer.chat_template", &tmpl, &len) == STATUS_OK)
        e->fmt = chat_template_detect(tmpl, len);
    if (e->fmt <= CHAT_FORMAT_UNKNOWN) /* base models: ChatML is llama.cpp's fallback too */
        e->fmt = CHAT_FORMAT_CHATML;
    for (const char *const *s = chat_template_stop_texts(e->fmt); *s && e->n_stop < MAX_STOP; s++) {
        int32_t id = tokenizer_find(e->tok, *s);
        if (id >= 0)
            e->stop[e->n_stop++] = id;
    }
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* See engine_model_fingerprint.  Read errors leave a fingerprint of what could be read. */
static void fingerprint(const char *path, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    FILE *f = fopen(path, "rb");
    static const size_t edge = 4u << 20, sample = 64u << 10;
    uint8_t *buf = malloc(edge);
    if (f && buf && fseeko(f, 0, SEEK_END) == 0) {
        off_t size = ftello(f);
        h = fnv1a(h, (const uint8_t *)&size, sizeof size);
        off_t offs[18];
        size_t lens[18], n = 0;
        offs[n] = 0, lens[n++] = edge;
        for (int i = 1; i <= 16; i++)
            offs[n] = size / 17 * i, lens[n++] = sample;
        offs[n] = size > (off_t)edge ? size - (off_t)edge : 0, lens[n++] = edge;
        for (size_t i = 0; i < n; i++)
            if (fseeko(f, offs[i], SEEK_SET) == 0)
                h = fnv1a(h, buf, fread(buf, 1, lens[i], f));
    }
    if (f)
        fclose(f);
    free(buf);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

const char *engine_model_fingerprint(const struct engine *e)
{
    return e->fingerprint;
}

#define STATE_MAGIC 0x31534645u /* "EFS1" */

struct state_hdr {
    uint32_t magic;
    char fingerprint[17];
    uint8_t pad[3];
    int32_t n_ctx, n_vocab;
    uint64_t kv_len, sampler_len;
};

int engine_state_save(struct engine *e, const struct sampler *s, void **blob, size_t *len)
{
    model_gpu_pull(e->model, 1); /* the GPU layers' entries into the CPU cache */
    const struct kv_cache *kv = model_kv(e->model);
    struct state_hdr h = { .magic = STATE_MAGIC, .n_ctx = engine_n_ctx(e),
                           .n_vocab = engine_n_vocab(e) };
    memcpy(h.fingerprint, e->fingerprint, sizeof h.fingerprint);
    h.kv_len = kv_cache_state_size(kv);
    h.sampler_len = s ? sampler_state_size(s) : 0;
    size_t logits = (size_t)h.n_vocab * sizeof(float);
    size_t n = sizeof h + logits + h.kv_len + h.sampler_len;
    uint8_t *b = malloc(n);
    if (!b)
        return fail(e, STATUS_NOMEM, "out of memory saving the state (%zu bytes)", n);
    memcpy(b, &h, sizeof h);
    memcpy(b + sizeof h, engine_logits(e), logits);
    kv_cache_state_save(kv, b + sizeof h + logits);
    if (s)
        sampler_state_save(s, b + sizeof h + logits + h.kv_len);
    *blob = b;
    *len = n;
    return STATUS_OK;
}

int engine_state_load(struct engine *e, struct sampler *s, const void *blob, size_t len)
{
    struct state_hdr h;
    const uint8_t *b = blob;
    if (len < sizeof h)
        return fail(e, STATUS_FORMAT, "saved state is damaged (too short)");
    memcpy(&h, b, sizeof h);
    if (h.magic != STATE_MAGIC)
        return fail(e, STATUS_FORMAT, "saved state is damaged (bad magic)");
    if (memcmp(h.fingerprint, e->fingerprint, sizeof h.fingerprint) != 0)
        return fail(e, STATUS_INVALID, "the model file changed since this session was saved");
    if (h.n_ctx != engine_n_ctx(e) || h.n_vocab != engine_n_vocab(e))
        return fail(e, STATUS_INVALID, "saved with a context of %d tokens, now %d", h.n_ctx,
                    engine_n_ctx(e));
    size_t logits = (size_t)h.n_vocab * sizeof(float);
    if (len != sizeof h + logits + h.kv_len + h.sampler_len || (h.sampler_len && !s))
        return fail(e, STATUS_FORMAT, "saved state is damaged (size mismatch)");
    const uint8_t *samp = b + sizeof h + logits + h.kv_len;
    if (s && h.sampler_len) {
        /* check the sampler part first: kv load is the step that changes the engine */
        void *backup = malloc(sampler_state_size(s));
        if (!backup)
            return fail(e, STATUS_NOMEM, "out of memory");
        sampler_state_save(s, backup);
        int st = sampler_state_load(s, samp, h.sampler_len);
        if (st) {
            free(backup);
            return fail(e, st, "saved sampler state does not fit these sampling settings");
        }
        st = kv_cache_state_load(model_kv_mut(e->model), b + sizeof h + logits, h.kv_len);
        if (st) {
            sampler_state_load(s, backup, sampler_state_size(s));
            free(backup);
            return fail(e, st, st == STATUS_INVALID ? "saved with another KV policy or budget"
                                                     : "saved KV cache is damaged");
        }
        free(backup);
    } else {
        int st = kv_cache_state_load(model_kv_mut(e->model), b + sizeof h + logits, h.kv_len);
        if (st)
            return fail(e, st, st == STATUS_INVALID ? "saved with another KV policy or budget"
                                                     : "saved KV cache is damaged");
    }
    if (model_gpu_push(e->model) != STATUS_OK)
        return fail(e, STATUS_CUDA, "could not restore the KV cache on the GPU");
    model_set_logits(e->model, (const float *)(b + sizeof h));
    return STATUS_OK;
}

int engine_open(struct engine **out, const struct engine_params *p, char *err, size_t errlen)
{
    struct gguf *g = NULL;
    *out = NULL;
    if (p->template_name && chat_template_from_name(p->template_name) < 0)
        return status_set(err, errlen, STATUS_INVALID, "unknown chat template '%s' (valid: %s)",
                          p->template_name, chat_template_names());
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    int st = gguf_open(&g, p->model_path, err, errlen);
    if (st)
        goto fail;
    e->file_bytes = gguf_file_size(g);
    fingerprint(p->model_path, e->fingerprint);
    const char *nm;
    size_t nlen;
    if (gguf_get_str(g, "general.name", &nm, &nlen) == STATUS_OK && nlen < sizeof e->name) {
        memcpy(e->name, nm, nlen);
        e->name[nlen] = 0;
    } else {
        const char *base = strrchr(p->model_path, '/');
        snprintf(e->name, sizeof e->name, "%s", base ? base + 1 : p->model_path);
    }
    if ((st = tokenizer_open(&e->tok, g, err, errlen))) {
        gguf_close(g);
        goto fail;
    }
    setup_chat(e, g, p->template_name);
    struct model_params mp = { .n_ctx = p->n_ctx, .n_batch = p->n_batch,
                               .n_threads = p->n_threads, .kv_budget = p->kv_budget };
    /* every layer asked for a usable GPU (the default): a memory budget is sized in its rows
     * (model_gpu.c may still place fewer layers there, or none for keyformer-static) */
    char probe[256];
    mp.kv_on_gpu = p->n_gpu_layers < 0 && cuda_probe(probe, sizeof probe) != 0 &&
                   !(p->kv_set && p->kv.policy == KV_POLICY_KEYFORMER_STATIC);
    if (p->kv_set) {
        mp.kv = p->kv;
    } else { /* a full cache, in the storage type asked for (kfchat eval's reference) */
        mp.kv.policy = KV_POLICY_FULL;
        mp.kv.type = p->kv.type;
    }
    if ((st = model_load(&e->model, g, &mp, err, errlen))) /* takes g */
        goto fail;
    if ((st = model_gpu_attach(e->model, p->n_gpu_layers))) {
        snprintf(err, errlen, "%s: out of memory", p->model_path);
        goto fail;
    }
    if (tokenizer_n_vocab(e->tok) > model_hparams(e->model)->n_vocab) {
        st = status_set(err, errlen, STATUS_FORMAT,
                        "%s: tokenizer has %d tokens but the embedding only %d rows",
                        p->model_path, tokenizer_n_vocab(e->tok), model_hparams(e->model)->n_vocab);
        goto fail;
    }
    *out = e;
    return STATUS_OK;
fail:
    engine_close(e);
    return st;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    model_free(e->model);
    tokenizer_close(e->tok);
    free(e);
}

void engine_get_info(const struct engine *e, struct engine_info *info)
{
    const struct model_hparams *hp = model_hparams(e->model);
    memset(info, 0, sizeof(*info));
    info->path = gguf_path(model_gguf(e->model));
    info->arch = model_arch_name(hp->arch);
    info->name = e->name;
    info->template_name = chat_template_name(e->fmt);
    info->simd = quant_simd_name();
    info->n_params = model_n_params(e->model);
    info->file_bytes = e->file_bytes;
    info->weight_bytes = model_weight_bytes(e->model);
    info->kv_bytes = model_kv_bytes(e->model);
    info->kv_policy = kv_policy_name(kv_cache_params(model_kv(e->model))->policy);
    info->kv_type = kv_type_name(kv_cache_params(model_kv(e->model))->type);
    info->kv_budget = kv_cache_params(model_kv(e->model))->budget;
    info->kv_budget_bytes = (size_t)info->kv_budget * model_kv_token_bytes(e->model);
    info->n_vocab = hp->n_vocab;
    info->n_embd = hp->n_embd;
    info->n_layer = hp->n_layer;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->n_ff = hp->n_ff;
    info->n_ctx = model_n_ctx(e->model);
    info->n_ctx_train = hp->n_ctx_train;
    info->n_ctx_fixed_budget = model_default_ctx(hp, 1);
    info->n_threads = model_n_threads(e->model);
    info->gpu_note = model_gpu_note(e->model);
    info->gpu_layers = model_gpu_layers(e->model);
    info->gpu_bytes = model_gpu_bytes(e->model);
}

int engine_tokenize(struct engine *e, const char *text, size_t len, int add_special,
                    int parse_special, int32_t **out, int *n)
{
    /* every token but BOS/EOS covers at least one byte of text */
    if (len > (size_t)(1 << 28))
        return fail(e, STATUS_INVALID, "text too long to tokenize (%zu bytes)", len);
    int cap = (int)len + 8;
    int32_t *buf = malloc((size_t)cap * sizeof(int32_t));
    if (!buf)
        return fail(e, STATUS_NOMEM, "out of memory tokenizing %zu bytes", len);
    int k = tokenizer_encode(e->tok, text, len, add_special, parse_special, buf, cap);
    if (k < 0 || k > cap) {
        free(buf);
        return fail(e, k < 0 ? k : STATUS_INVALID, "tokenization failed");
    }
    *out = buf;
    *n = k;
    return STATUS_OK;
}

int engine_token_piece(const struct engine *e, int32_t id, char *buf, int len)
{
    int k = tokenizer_token_to_piece(e->tok, id, 0, buf, len);
    return k > len ? len : k; /* a piece longer than buf is cut (pieces are short) */
}

int engine_is_eog(const struct engine *e, int32_t id)
{
    if (tokenizer_is_eog(e->tok, id))
        return 1;
    for (int i = 0; i < e->n_stop; i++)
        if (e->stop[i] == id)
            return 1;
    return 0;
}

int engine_n_vocab(const struct engine *e)
{
    return model_hparams(e->model)->n_vocab;
}

int32_t engine_bos(const struct engine *e)
{
    return tokenizer_bos(e->tok);
}

int engine_eval(struct engine *e, const int32_t *tokens, int n, const volatile int *cancel,
                void (*progress)(void *ud, int done, int total), void *ud)
{
    int st = model_forward(e->model, tokens, n, NULL, 0, cancel, progress, ud);
    if (st == STATUS_CONTEXT_FULL)
        return fail(e, st, "context full: %d tokens do not fit (%d of %d positions used)", n,
                    model_n_past(e->model), model_n_ctx(e->model));
    if (st == STATUS_INVALID)
        return fail(e, st, "invalid token id in input");
    if (st && st != STATUS_STOPPED)
        return fail(e, st, "evaluation failed: %s", status_str(st));
    return st;
}

int engine_eval_all(struct engine *e, const int32_t *tokens, int n, float *out)
{
    int st = model_forward(e->model, tokens, n, out, 1, NULL, NULL, NULL);
    if (st == STATUS_CONTEXT_FULL)
        return fail(e, st, "context full: %d tokens do not fit (%d of %d positions used)", n,
                    model_n_past(e->model), model_n_ctx(e->model));
    if (st)
        return fail(e, st, "evaluation failed: %s", status_str(st));
    return st;
}

const float *engine_logits(const struct engine *e)
{
    return model_logits(e->model);
}

int engine_n_past(const struct engine *e)
{
    return model_n_past(e->model);
}

int engine_n_ctx(const struct engine *e)
{
    return model_n_ctx(e->model);
}

void engine_reset(struct engine *e)
{
    model_truncate(e->model, 0);
}

void engine_truncate(struct engine *e, int n_past)
{
    model_truncate(e->model, n_past);
}

size_t engine_kv_bytes_used(const struct engine *e)
{
    model_gpu_pull_counts(e->model);
    return model_kv_bytes_used(e->model);
}

size_t engine_kv_bytes_full(const struct engine *e)
{
    return model_kv_bytes_full(e->model);
}

const struct kv_cache *engine_kv(const struct engine *e)
{
    model_gpu_pull(e->model, 0); /* positions and scores of the GPU layers, for traces */
    return model_kv(e->model);
}

int engine_chat_format(const struct engine *e)
{
    return e->fmt;
}

static int eval_text(struct engine *e, const char *text, int add_bos, const volatile int *cancel,
                     void (*progress)(void *ud, int done, int total), void *ud)
{
    int32_t *toks;
    int n;
    int st = engine_tokenize(e, text, strlen(text), add_bos, 1, &toks, &n);
    if (st)
        return st;
    st = engine_eval(e, toks, n, cancel, progress, ud);
    free(toks);
    return st;
}

int engine_chat_push(struct engine *e, const struct chat_msg *msgs, size_t i, int add_gen_prompt,
                     const volatile int *cancel, void (*progress)(void *ud, int done, int total),
                     void *ud)
{
    char *text;
    int st = chat_template_render_turn(e->fmt, msgs, i, add_gen_prompt, &text);
    if (st)
        return fail(e, st, "cannot render chat turn: %s", status_str(st));
    st = eval_text(e, text, engine_n_past(e) == 0, cancel, progress, ud);
    free(text);
    return st;
}

int engine_chat_close_reply(struct engine *e)
{
    return eval_text(e, chat_template_assistant_close(e->fmt), 0, NULL, NULL, NULL);
}
