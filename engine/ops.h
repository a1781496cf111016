/*
 * ops.h — the element-wise and small vector kernels of the forward pass (everything but matmul):
 * normalisation, softmax, RoPE, activations, element-wise arithmetic, and attention's kernels
 * (dot products against a block of key rows, weighted sums of value rows, one-query attention).
 *
 * All kernels work on f32, single-threaded (the caller splits rows across threads if it wants).
 * Unless a function says otherwise, `out` may alias an input exactly (in place), but not
 * partially.  Numerics follow ggml's CPU kernels (sums of squares and softmax denominators in
 * double, RoPE angles built in f32 the way ggml builds them) so that we track llama.cpp closely.
 *
 * The hot kernels (dot, axpy, dot_rows, wsum_rows, exp-based activations, softmax, rmsnorm) have
 * an AVX-512 version chosen at run time; the scalar versions are exported as ops_ref_* so tests
 * can compare the two.
 */
#ifndef KF_OPS_H
#define KF_OPS_H

#include <stddef.h>
#include <stdint.h>

/* y_i = x_i / sqrt(mean(x²) + eps) · w_i; w == NULL means w_i = 1. */
void ops_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out);

/* y_i = (x_i − μ) / sqrt(var + eps) · w_i + b_i; w and b may each be NULL (1 and 0). */
void ops_layernorm(const float *x, const float *w, const float *b, int64_t n, float eps,
                   float *out);

/* In-place softmax over n values, max-subtracted.  -INFINITY entries get probability 0; at least
 * one entry must be finite. */
void ops_softmax(float *x, int64_t n);

/* Activations, out[i] = f(x[i]). */
void ops_silu(const float *x, int64_t n, float *out);      /* x / (1 + e^-x) */
/* 0.5x(1 + tanh(0.7978845608(x + 0.044715x³))) */
void ops_gelu_tanh(const float *x, int64_t n, float *out);
/* 0.5x(1 + erf(x/√2)), the exact GELU (HF MPT; llama.cpp uses the tanh form for MPT too) */
void ops_gelu_erf(const float *x, int64_t n, float *out);
/* Gated FFN activations: out[i] = silu(gate[i]) · up[i]  /  gelu_tanh(gate[i]) · up[i]. */
void ops_swiglu(const float *gate, const float *up, int64_t n, float *out);
void ops_geglu(const float *gate, const float *up, int64_t n, float *out);

/* Element-wise arithmetic. */
void ops_mul(const float *a, const float *b, int64_t n, float *out);   /* a_i · b_i */
void ops_add(const float *a, const float *b, int64_t n, float *out);   /* a_i + b_i */
void ops_scale(const float *x, float s, int64_t n, float *out);        /* s · x_i   */

/* Σ a_i·b_i (f32 accumulation in a fixed order: deterministic for a given n). */
float ops_dot(const float *a, const float *b, int64_t n);
/* y_i += a · x_i.  x and y must not overlap. */
void ops_axpy(float a, const float *x, int64_t n, float *y);

/*
 * The two halves of attention over a strided block of rows (row j at k + j·stride, n floats):
 * ops_dot_rows: out[j] = q · k_j for j < n_rows (16 rows per step, much faster than a loop of
 * ops_dot); ops_wsum_rows: out[0..n) = Σ_j a_j · v_j (overwrites out, which must not overlap).
 */
void ops_dot_rows(const float *q, const float *k, int64_t n_rows, int64_t stride, int64_t n,
                  float *out);
void ops_wsum_rows(const float *a, const float *v, int64_t n_rows, int64_t stride, int64_t n,
                   float *out);
/*
 * ops_wsum_rows in pieces, for callers that stream the rows in tiles shared by several weight
 * vectors (GQA: a tile of values read once for every query head of a KV head).  The state
 * (ops_wsum_state_floats(n) floats) carries the partial sums between calls; if every tile but
 * the last has an even number of rows, the result is ops_wsum_rows's over all rows, bit for bit.
 */
/*
 * The elementwise steps around attention's softmax:
 * ops_mask_scale: att[j] = scale·att[j] where position pos[j] is visible from qpos (pos[j] <= qpos,
 * and qpos − pos[j] < win when win > 0), else −inf;  ops_add_scale: y[j] = (x[j] + y[j])·s.
 */
void ops_mask_scale(float *att, const int32_t *pos, int64_t n, int32_t qpos, int32_t win,
                    float scale);
void ops_add_scale(const float *x, float *y, int64_t n, float s);
/*
 * Keyformer's score row in one call: acc[j] += softmax((x + y)·s)[j], y being overwritten (it
 * holds the noise on entry).  The same operations in the same order as ops_add_scale,
 * ops_softmax and ops_add one after the other (bit for bit), in three passes over the row
 * instead of six.
 */
void ops_noisy_softmax_add(const float *x, float *y, int64_t n, float s, float *acc);
size_t ops_wsum_state_floats(int64_t n);
void ops_wsum_begin(float *st, int64_t n);
void ops_wsum_step(const float *a, const float *v, int64_t n_rows, int64_t stride, int64_t n,
                   float *st);
void ops_wsum_end(const float *st, int64_t n, float *out);
/* (engine/ops.c takes the best instruction set this CPU has: AVX-512, AVX2 + FMA or scalar;
 * KF_OPS_SIMD=avx2 or =scalar caps it, for tests and comparisons.) */

/* ---- RoPE ------------------------------------------------------------------------------- */

enum ops_rope_mode {
    OPS_ROPE_NORM = 0, /* rotate pairs (x[2i], x[2i+1]) — llama, GPT-J */
    OPS_ROPE_NEOX = 2, /* rotate pairs (x[i], x[i + n_rot/2]) — qwen2, gemma3, NeoX (ggml's id 2) */
};

#define OPS_ROPE_MAX_ROT 1024 /* n_rot limit (the cos/sin cache lives on the stack) */

struct ops_rope_params {
    int mode;                 /* enum ops_rope_mode */
    int n_rot;                /* rotated dimensions: even, <= head_dim; the rest is copied */
    float base;               /* freq_base, e.g. 10000 */
    float freq_scale;         /* 1 / rope scaling factor (linear scaling); 1 = none */
    const float *freq_factors; /* n_rot/2 divisors of θ_i (rope_freqs tensor), or NULL */
};

/*
 * Rotate a block of n_tokens × n_heads head vectors of head_dim floats.  Head h of token t starts
 * at x + t·stride + h·head_dim (stride in floats, >= n_heads·head_dim, so Q inside a fused QKV row
 * works); the result goes to the same offsets of out (out == x for in place).  pos[t] is the
 * position of token t.  θ_i = freq_scale · pos · base^(−2i/n_rot) / ff_i, with base^(−2/n_rot)
 * accumulated by repeated f32 multiplication as ggml does.  YaRN is not supported.
 * Returns STATUS_OK, or STATUS_INVALID for an odd/too large n_rot or an unknown mode.
 */
int ops_rope(const float *x, float *out, int64_t n_tokens, int n_heads, int head_dim,
             int64_t stride, const int32_t *pos, const struct ops_rope_params *rp);

/* ---- attention -------------------------------------------------------------------------- */

/*
 * Attention of one query head over n_kv >= 1 keys (all of them visible: the caller applies the
 * causal / sliding-window mask by choosing the range it passes): ops_dot_rows, scale and ALiBi,
 * ops_softmax, ops_wsum_rows.
 *   q      head_dim floats
 *   k, v   key j at k + j·kv_stride, value j at v + j·kv_stride (floats; kv_stride >= head_dim),
 *          so a cache laid out as [pos][n_head_kv][head_dim] is passed as k + h_kv·head_dim with
 *          kv_stride = n_head_kv·head_dim
 *   score_j = scale · q·k_j − alibi_slope · |q_pos − (kv_pos0 + j)|   (slope 0: no ALiBi)
 *   att    scratch of n_kv floats; holds the probabilities on return
 *   out    head_dim floats, Σ_j softmax(score)_j · v_j; must not overlap q, k, v or att
 */
void ops_attention(const float *q, const float *k, const float *v, int64_t n_kv, int head_dim,
                   int64_t kv_stride, float scale, float alibi_slope, int64_t q_pos,
                   int64_t kv_pos0, float *att, float *out);

/* ---- scalar references of the SIMD kernels (test oracles) ------------------------------- */
void ops_ref_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out);
void ops_ref_layernorm(const float *x, const float *w, const float *b, int64_t n, float eps,
                       float *out);
void ops_ref_softmax(float *x, int64_t n);
void ops_ref_silu(const float *x, int64_t n, float *out);
void ops_ref_gelu_tanh(const float *x, int64_t n, float *out);
void ops_ref_swiglu(const float *gate, const float *up, int64_t n, float *out);
float ops_ref_dot(const float *a, const float *b, int64_t n);
void ops_ref_axpy(float a, const float *x, int64_t n, float *y);
void ops_ref_dot_rows(const float *q, const float *k, int64_t n_rows, int64_t stride, int64_t n,
                      float *out);
void ops_ref_wsum_rows(const float *a, const float *v, int64_t n_rows, int64_t stride, int64_t n,
                       float *out);
void ops_ref_mask_scale(float *att, const int32_t *pos, int64_t n, int32_t qpos, int32_t win,
                        float scale);
void ops_ref_add_scale(const float *x, float *y, int64_t n, float s);
void ops_ref_noisy_softmax_add(const float *x, float *y, int64_t n, float s, float *acc);
/* "avx512" or "scalar": the level the dispatching kernels above use on this CPU. */
const char *ops_simd_name(void);

#endif
