/*
 * quant.h — tensor element types: ids (ggml's numbering, as stored in GGUF), block layouts,
 * and one traits table that says how to dequantize, quantize and dot-product each type.
 *
 * A quantized row of K elements is K/blck consecutive blocks of `size` bytes.  Weight rows are
 * multiplied with activations that were first quantized to the type's `vec_dot_type` (Q8_0 for
 * the 32-element types, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants, F32 for float types), exactly as
 * ggml does, so that our results track llama.cpp's to the last few bits.
 *
 * Every kernel has a scalar reference in quant_ref.c (`*_ref`), which is the oracle the SIMD
 * versions in quant_x86.c are tested against.  The table entries point at the fastest version
 * this CPU supports once quant_init() has run (idempotent, thread-safe).
 */
#ifndef KF_QUANT_H
#define KF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus /* the CUDA backend reads the block layouts too */
#define _Static_assert static_assert
extern "C" {
#endif

enum qtype {
    QTYPE_F32 = 0,
    QTYPE_F16 = 1,
    QTYPE_Q4_0 = 2,
    QTYPE_Q4_1 = 3,
    QTYPE_Q5_0 = 6,
    QTYPE_Q5_1 = 7,
    QTYPE_Q8_0 = 8,
    QTYPE_Q8_1 = 9,
    QTYPE_Q2_K = 10,
    QTYPE_Q3_K = 11,
    QTYPE_Q4_K = 12,
    QTYPE_Q5_K = 13,
    QTYPE_Q6_K = 14,
    QTYPE_Q8_K = 15,
    QTYPE_BF16 = 30,
    QTYPE_COUNT = 43 /* one past the highest id GGUF files may carry (see engine-reference 1.5) */
};

#define QK 32   /* elements per legacy block */
#define QK_K 256 /* elements per K-quant super-block */
#define K_SCALE_SIZE 12

/* --- block layouts (byte-exact with ggml-common.h) ----------------------------------------- */
struct blk_q4_0 { uint16_t d; uint8_t qs[QK / 2]; };
struct blk_q4_1 { uint16_t d, m; uint8_t qs[QK / 2]; };
struct blk_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct blk_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct blk_q8_0 { uint16_t d; int8_t qs[QK]; };
struct blk_q8_1 { uint16_t d, s; int8_t qs[QK]; };   /* s = d * sum(qs) */
struct blk_q2_k { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; };
struct blk_q3_k { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct blk_q4_k { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct blk_q5_k { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8];
                  uint8_t qs[QK_K / 2]; };
struct blk_q6_k { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct blk_q8_k { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };

_Static_assert(sizeof(struct blk_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(struct blk_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(struct blk_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(struct blk_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(struct blk_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(struct blk_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(struct blk_q2_k) == 84, "q2_K block");
_Static_assert(sizeof(struct blk_q3_k) == 110, "q3_K block");
_Static_assert(sizeof(struct blk_q4_k) == 144, "q4_K block");
_Static_assert(sizeof(struct blk_q5_k) == 176, "q5_K block");
_Static_assert(sizeof(struct blk_q6_k) == 210, "q6_K block");
_Static_assert(sizeof(struct blk_q8_k) == 292, "q8_K block");

/* Dequantize n elements (n % blck == 0) of a row. */
typedef void (*quant_to_f32_fn)(const void *src, float *dst, int64_t n);
/* Quantize n elements (n % blck == 0) into blocks (reference quality, deterministic). */
typedef void (*quant_from_f32_fn)(const float *src, void *dst, int64_t n);
/* *s = dot(row of n elements of this type, activation row already in vec_dot_type). */
typedef void (*quant_vec_dot_fn)(int n, float *s, const void *w, const void *a);

struct quant_traits {
    const char *name;            /* "q4_K", as llama.cpp prints it; NULL = not a valid type */
    int blck;                    /* elements per block */
    int size;                    /* bytes per block */
    int is_quant;
    int supported;               /* we can compute with it (dequant + dot) */
    quant_to_f32_fn to_f32;
    quant_from_f32_fn from_f32;
    quant_vec_dot_fn vec_dot;
    enum qtype vec_dot_type;
};

/* Select SIMD kernels for this CPU.  Called by engine/model open and by tests. */
void quant_init(void);
/* Traits of a type id, or NULL if id is not a known ggml type (removed ids included). */
const struct quant_traits *quant_traits_get(uint32_t id);
/* Bytes of a row of n elements (n must be a multiple of blck). */
size_t quant_row_size(uint32_t id, int64_t n);
/* Name of the SIMD level in use ("avx512vnni", "avx2", "scalar"). */
const char *quant_simd_name(void);

#ifdef __cplusplus
}
#endif

#endif
