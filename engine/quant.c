/*
 * quant.c — the tensor type traits table: for every ggml type id a GGUF file may carry, its
 * name, block geometry and (for the types we compute with) its kernels.
 *
 * The table starts out pointing at the scalar references of quant_ref.c / quant_ref_k.c, so it
 * is usable at once; quant_init() runs exactly once (pthread_once) and lets quant_x86.c replace
 * entries with SIMD kernels for this CPU.  Every accessor goes through quant_init() first, so
 * no caller can observe the table half-patched, and after the first call it is read-only.
 * Ids that ggml removed (4, 5, 31-33, 36-38) have no entry (name NULL).
 */
#include "config.h"

#include <pthread.h>

#include "quant.h"
#include "quant_ref.h"

/* Ids of the types we only recognise (geometry, name), numbered as in ggml.h. */
enum {
    QID_IQ2_XXS = 16, QID_IQ2_XS = 17, QID_IQ3_XXS = 18, QID_IQ1_S = 19, QID_IQ4_NL = 20,
    QID_IQ3_S = 21, QID_IQ2_S = 22, QID_IQ4_XS = 23, QID_I8 = 24, QID_I16 = 25, QID_I32 = 26,
    QID_I64 = 27, QID_F64 = 28, QID_IQ1_M = 29, QID_TQ1_0 = 34, QID_TQ2_0 = 35, QID_MXFP4 = 39,
    QID_NVFP4 = 40, QID_Q1_0 = 41, QID_Q2_0 = 42,
};

#define QUANT_REF(t, id, nm, blk, sz, isq, vdt)                                                 \
    [id] = { .name = nm, .blck = blk, .size = sz, .is_quant = isq, .supported = 1,              \
             .to_f32 = dequant_##t##_ref, .from_f32 = quantize_##t##_ref,                       \
             .vec_dot = vec_dot_##t##_ref, .vec_dot_type = vdt }

#define QUANT_KNOWN(id, nm, blk, sz, isq, vdt)                                                  \
    [id] = { .name = nm, .blck = blk, .size = sz, .is_quant = isq, .supported = 0,              \
             .vec_dot_type = (enum qtype)(vdt) }

/*
 * The one mutable table (patched once by quant_init).  vec_dot_type of the recognised-only
 * types is what ggml would use, kept for completeness; nothing computes with them.
 */
static struct quant_traits quant_table[QTYPE_COUNT] = {
    QUANT_REF(f32, QTYPE_F32, "f32", 1, 4, 0, QTYPE_F32),
    QUANT_REF(f16, QTYPE_F16, "f16", 1, 2, 0, QTYPE_F32),
    QUANT_REF(q4_0, QTYPE_Q4_0, "q4_0", QK, sizeof(struct blk_q4_0), 1, QTYPE_Q8_0),
    QUANT_REF(q4_1, QTYPE_Q4_1, "q4_1", QK, sizeof(struct blk_q4_1), 1, QTYPE_Q8_1),
    QUANT_REF(q5_0, QTYPE_Q5_0, "q5_0", QK, sizeof(struct blk_q5_0), 1, QTYPE_Q8_0),
    QUANT_REF(q5_1, QTYPE_Q5_1, "q5_1", QK, sizeof(struct blk_q5_1), 1, QTYPE_Q8_1),
    QUANT_REF(q8_0, QTYPE_Q8_0, "q8_0", QK, sizeof(struct blk_q8_0), 1, QTYPE_Q8_0),
    QUANT_REF(q8_1, QTYPE_Q8_1, "q8_1", QK, sizeof(struct blk_q8_1), 1, QTYPE_Q8_1),
    QUANT_REF(q2_k, QTYPE_Q2_K, "q2_K", QK_K, sizeof(struct blk_q2_k), 1, QTYPE_Q8_K),
    QUANT_REF(q3_k, QTYPE_Q3_K, "q3_K", QK_K, sizeof(struct blk_q3_k), 1, QTYPE_Q8_K),
    QUANT_REF(q4_k, QTYPE_Q4_K, "q4_K", QK_K, sizeof(struct blk_q4_k), 1, QTYPE_Q8_K),
    QUANT_REF(q5_k, QTYPE_Q5_K, "q5_K", QK_K, sizeof(struct blk_q5_k), 1, QTYPE_Q8_K),
    QUANT_REF(q6_k, QTYPE_Q6_K, "q6_K", QK_K, sizeof(struct blk_q6_k), 1, QTYPE_Q8_K),
    QUANT_REF(q8_k, QTYPE_Q8_K, "q8_K", QK_K, sizeof(struct blk_q8_k), 1, QTYPE_Q8_K),
    QUANT_REF(bf16, QTYPE_BF16, "bf16", 1, 2, 0, QTYPE_F32),

    QUANT_KNOWN(QID_IQ2_XXS, "iq2_xxs", QK_K, 66, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_IQ2_XS, "iq2_xs", QK_K, 74, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_IQ3_XXS, "iq3_xxs", QK_K, 98, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_IQ1_S, "iq1_s", QK_K, 50, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_IQ4_NL, "iq4_nl", QK, 18, 1, QTYPE_Q8_0),
    QUANT_KNOWN(QID_IQ3_S, "iq3_s", QK_K, 110, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_IQ2_S, "iq2_s", QK_K, 82, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_IQ4_XS, "iq4_xs", QK_K, 136, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_I8, "i8", 1, 1, 0, QID_I8),
    QUANT_KNOWN(QID_I16, "i16", 1, 2, 0, QID_I16),
    QUANT_KNOWN(QID_I32, "i32", 1, 4, 0, QID_I32),
    QUANT_KNOWN(QID_I64, "i64", 1, 8, 0, QID_I64),
    QUANT_KNOWN(QID_F64, "f64", 1, 8, 0, QID_F64),
    QUANT_KNOWN(QID_IQ1_M, "iq1_m", QK_K, 56, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_TQ1_0, "tq1_0", QK_K, 54, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_TQ2_0, "tq2_0", QK_K, 66, 1, QTYPE_Q8_K),
    QUANT_KNOWN(QID_MXFP4, "mxfp4", QK, 17, 1, QTYPE_Q8_0),
    QUANT_KNOWN(QID_NVFP4, "nvfp4", 64, 36, 1, QTYPE_Q8_0),
    QUANT_KNOWN(QID_Q1_0, "q1_0", 128, 18, 1, QTYPE_Q8_0),
    QUANT_KNOWN(QID_Q2_0, "q2_0", 64, 18, 1, QTYPE_Q8_0),
};

/* Set once, inside quant_once, from what quant_x86_install reports. */
static const char *quant_simd_level = "scalar";
static pthread_once_t quant_once = PTHREAD_ONCE_INIT;

static void quant_install(void)
{
    /* from_f32 of an activation format quantizes activations (quant_ref.h) */
    quant_table[QTYPE_Q8_0].from_f32 = quantize_q8_0_act_ref;
    const char *level = quant_x86_install(quant_table, QTYPE_COUNT);
    if (level)
        quant_simd_level = level;
}

void quant_init(void)
{
    pthread_once(&quant_once, quant_install);
}

const struct quant_traits *quant_traits_get(uint32_t id)
{
    if (id >= QTYPE_COUNT)
        return NULL;
    quant_init();
    return quant_table[id].name ? &quant_table[id] : NULL;
}

size_t quant_row_size(uint32_t id, int64_t n)
{
    const struct quant_traits *t = quant_traits_get(id);
    if (!t || n < 0 || n % t->blck)
        return 0;
    return (size_t)(n / t->blck) * (size_t)t->size;
}

const char *quant_simd_name(void)
{
    quant_init();
    return quant_simd_level;
}
