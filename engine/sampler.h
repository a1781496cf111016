/*
 * sampler.h — next-token selection from logits: llama.cpp's default sampler chain.
 *
 * The chain is, in this order: penalties (repeat / frequency / presence over the last
 * penalty_last_n accepted tokens) → top-k → top-p → min-p → temperature → dist (one random
 * draw).  Truncation happens before temperature, so top-p and min-p see the untempered
 * distribution.  temp <= 0 is greedy: the argmax of the penalised logits, lowest id on ties,
 * with no random draw.
 *
 * A sampler owns its RNG (xoshiro256**, seeded through splitmix64) and a ring of recent
 * tokens; both can be saved and restored so that a resumed chat continues with exactly the
 * same draws.  All work buffers are sized to n_vocab at creation: sampling allocates nothing.
 * A sampler is not thread-safe; use one per generating thread.  The module is pure: no
 * tokenizer, no model.
 */
#ifndef KF_SAMPLER_H
#define KF_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* seed value meaning "pick one at random" (from /dev/urandom, else time and address bits). */
#define SAMPLER_SEED_RANDOM UINT64_MAX

struct sampler_params {
    float temp;             /* <= 0: greedy */
    int top_k;              /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off; logit <= 0 is multiplied by it, logit > 0 divided */
    int penalty_last_n;     /* ring size; 0: penalties off; must not be negative */
    float freq_penalty;     /* subtracted once per occurrence in the ring */
    float presence_penalty; /* subtracted once if present in the ring */
    uint64_t seed;          /* SAMPLER_SEED_RANDOM: random */
};

struct sampler;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat 1.0 (off),
 * last_n 64, frequency and presence 0, random seed. */
struct sampler_params sampler_params_default(void);

/*
 * Create a sampler for vocabularies of up to n_vocab tokens; *out is owned by the caller
 * (sampler_free).  Returns STATUS_OK, STATUS_INVALID (n_vocab <= 0, penalty_last_n < 0; the
 * caller resolves llama.cpp's "-1 = context size" itself) or STATUS_NOMEM.  The params are
 * copied.  Memory: about 20 bytes per vocabulary entry.
 */
int sampler_new(struct sampler **out, const struct sampler_params *params, int n_vocab);
void sampler_free(struct sampler *s);

/* The seed actually in use (the drawn one when the params asked for SAMPLER_SEED_RANDOM). */
uint64_t sampler_seed(const struct sampler *s);

/*
 * Record a token in the penalty ring: every sampled token, and the prompt tokens too (as the
 * llama.cpp CLI does).  Tokens outside [0, n_vocab) are ignored.
 */
void sampler_accept(struct sampler *s, int token);

/* Forget the penalty ring (a new conversation); the RNG is left as it is. */
void sampler_reset(struct sampler *s);

/*
 * Pick the next token from logits[0..n_vocab), which is not modified.  Returns the token id
 * (>= 0), or STATUS_INVALID if logits is NULL or n_vocab is not in [1, the size given to
 * sampler_new].  Does not accept the token: call sampler_accept with it.
 */
int sampler_sample(struct sampler *s, const float *logits, int n_vocab);

/*
 * Inspection (tests, "show alternatives" UIs): run the chain up to the draw without touching
 * the RNG.  Writes the best min(result, max) survivors, most probable first, with their final
 * probabilities (after temperature, summing to 1 over all survivors) into ids/probs; either
 * may be NULL.  Returns the number of survivors, or STATUS_INVALID as sampler_sample.
 */
int sampler_candidates(struct sampler *s, const float *logits, int n_vocab, int *ids, float *probs,
                       int max);

/*
 * Exact-resume state: RNG and penalty ring, in a portable little-endian byte format.
 * sampler_state_size is the size sampler_state_save writes now (it grows with the ring until
 * the ring is full).  sampler_state_load returns STATUS_OK, or STATUS_FORMAT (bad magic, size
 * or token id; the sampler is then unchanged).  Loading into a sampler with a smaller ring
 * keeps the most recent tokens.
 */
size_t sampler_state_size(const struct sampler *s);
void sampler_state_save(const struct sampler *s, void *buf);
int sampler_state_load(struct sampler *s, const void *buf, size_t n);

#endif
