/*
 * engine.h — the engine's public face: one loaded model with its tokenizer, chat template and
 * context.  This is all that src/ (and later the UI worker) sees of the engine.
 *
 * Lifetime: engine_open loads everything up front (weights are memory-mapped; the KV cache and
 * activation buffers are allocated once).  Calls on one engine must come from one thread at a
 * time.  Errors: functions return status codes (status.h); the message of the last error is
 * engine_errmsg(e), borrowed, valid until the next call on e.
 */
#ifndef KF_ENGINE_H
#define KF_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "kv_cache.h"
#include "sampler.h"
#include "status.h"

struct engine;

struct engine_params {
    const char *model_path;
    int n_ctx;                 /* 0: min(training context, 4096); with a budget in tokens or
                                * memory, the training context (the cache stays at the budget) */
    int n_batch;               /* 0: 512 */
    int n_threads;             /* 0: all online CPUs */
    const char *template_name; /* NULL: detect from the file */
    struct kv_params kv;       /* KV policy (kv_params_default() for keyformer) */
    const char *kv_budget;     /* "2048", "50%", "256MiB"; NULL: the whole context (no eviction) */
    int kv_set;                /* kv is filled in; 0: full cache */
    int n_gpu_layers;          /* layers on the GPU: 0 none (CPU), N the last N, < 0 all */
};

struct engine_info {
    const char *path;
    const char *arch;          /* "llama", ... */
    const char *name;          /* general.name or the file name */
    const char *template_name; /* chat format in use */
    const char *simd;          /* kernel level in use */
    const char *kv_policy;     /* policy name */
    const char *kv_type;       /* "f16" or "q8_0" (kv_cache.h's enum kv_type) */
    int kv_budget;             /* entries per layer and KV head (n_ctx when unbounded) */
    uint64_t n_params;
    size_t file_bytes, weight_bytes, kv_bytes;
    size_t kv_budget_bytes;    /* what the budget holds: budget × layers × KV heads × entry */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, n_ctx_train, n_threads;
    int n_ctx_fixed_budget;    /* the default context with a budget in tokens or memory */
    const char *gpu_note;      /* where the layers run, or why not on the GPU ("" if not asked) */
    int gpu_layers;            /* layers on the GPU */
    size_t gpu_bytes;          /* device memory the model holds */
};

/* Open a model.  On failure *out is NULL and err holds one line (file name + problem). */
int engine_open(struct engine **out, const struct engine_params *p, char *err, size_t errlen);
void engine_close(struct engine *e);
const char *engine_errmsg(const struct engine *e);
void engine_get_info(const struct engine *e, struct engine_info *info);

/* --- tokens ---------------------------------------------------------------------------------- */
/*
 * Tokenize text into *out (malloc'd, caller frees) with *n tokens.  add_special adds BOS/EOS as
 * the model wants; parse_special turns special-token texts into their ids (chat prompts).
 */
int engine_tokenize(struct engine *e, const char *text, size_t len, int add_special,
                    int parse_special, int32_t **out, int *n);
/* Raw bytes of a token (incomplete UTF-8 possible: see struct utf8_stream in the CLI). */
int engine_token_piece(const struct engine *e, int32_t id, char *buf, int len);
/* End of generation: EOS/EOT of the tokenizer plus the chat format's stop tokens. */
int engine_is_eog(const struct engine *e, int32_t id);
int engine_n_vocab(const struct engine *e);
int32_t engine_bos(const struct engine *e);

/* --- context ---------------------------------------------------------------------------------- */
/*
 * Evaluate tokens at the end of the context; afterwards engine_logits() are the last token's.
 * STATUS_CONTEXT_FULL: they do not fit (nothing changed; errmsg says by how much).
 * STATUS_STOPPED: *cancel became nonzero (the part already evaluated stays).
 */
int engine_eval(struct engine *e, const int32_t *tokens, int n, const volatile int *cancel,
                void (*progress)(void *ud, int done, int total), void *ud);
/* As engine_eval, but writes every token's logits (n × n_vocab) to out (teacher forcing). */
int engine_eval_all(struct engine *e, const int32_t *tokens, int n, float *out);
const float *engine_logits(const struct engine *e);
int engine_n_past(const struct engine *e);
int engine_n_ctx(const struct engine *e);
void engine_reset(struct engine *e);
/* Forget everything after the first n_past positions (n_past <= engine_n_past). */
void engine_truncate(struct engine *e, int n_past);
size_t engine_kv_bytes_used(const struct engine *e);
/* What an unbounded cache would hold now (the saving is this minus bytes used). */
size_t engine_kv_bytes_full(const struct engine *e);
/* The KV cache, for its trace API (kv_cache_trace etc.); borrowed, read between calls only. */
const struct kv_cache *engine_kv(const struct engine *e);

/* --- snapshots (exact resume) ----------------------------------------------------------------- */
/*
 * A fingerprint of the model file (hex, 16 digits): size plus FNV-1a over its first and last
 * 4 MiB and 16 evenly spread 64 KiB samples, so that it costs milliseconds even for large files
 * yet changes when the file does.  Borrowed, valid for the engine's life.
 */
const char *engine_model_fingerprint(const struct engine *e);
/*
 * Save everything needed to continue exactly: the KV cache (entries, positions, scores), the
 * last logits, and the sampler's RNG and penalty state (s may be NULL).  *blob is malloc'd.
 * engine_state_load restores it; STATUS_INVALID means it belongs to another model file, context
 * size or KV policy (errmsg says which) and the caller should re-process the transcript;
 * STATUS_FORMAT means the blob is damaged.  On error the engine state is unchanged.
 */
int engine_state_save(struct engine *e, const struct sampler *s, void **blob, size_t *len);
int engine_state_load(struct engine *e, struct sampler *s, const void *blob, size_t len);

/* --- chat ------------------------------------------------------------------------------------- */
int engine_chat_format(const struct engine *e);
/*
 * Render message i of msgs (history msgs[0..i)) in the model's chat format, tokenize it (BOS
 * added before the very first turn when the context is empty) and evaluate it.
 */
int engine_chat_push(struct engine *e, const struct chat_msg *msgs, size_t i, int add_gen_prompt,
                     const volatile int *cancel, void (*progress)(void *ud, int done, int total),
                     void *ud);
/* After a generated reply ended (by a stop token or a limit), close the assistant turn. */
int engine_chat_close_reply(struct engine *e);

#endif
