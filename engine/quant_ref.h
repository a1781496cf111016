/*
 * quant_ref.h — scalar reference kernels for every tensor type: the test oracle for SIMD code.
 *
 * Naming: dequant_<t>_ref (row -> f32), quantize_<t>_ref (f32 -> row), and
 * vec_dot_<t>_ref (weight row of type t · activation row of t's vec_dot_type -> f32).
 * n is the number of elements and must be a multiple of the type's block size.
 */
#ifndef KF_QUANT_REF_H
#define KF_QUANT_REF_H

#include <stdint.h>

#include "quant.h"

#define KF_QUANT_REF_DECL(t)                                              \
    void dequant_##t##_ref(const void *src, float *dst, int64_t n);       \
    void quantize_##t##_ref(const float *src, void *dst, int64_t n);      \
    void vec_dot_##t##_ref(int n, float *s, const void *w, const void *a);

KF_QUANT_REF_DECL(f32)
KF_QUANT_REF_DECL(f16)
KF_QUANT_REF_DECL(bf16)
KF_QUANT_REF_DECL(q4_0)
KF_QUANT_REF_DECL(q4_1)
KF_QUANT_REF_DECL(q5_0)
KF_QUANT_REF_DECL(q5_1)
KF_QUANT_REF_DECL(q8_0)
KF_QUANT_REF_DECL(q8_1)
KF_QUANT_REF_DECL(q2_k)
KF_QUANT_REF_DECL(q3_k)
KF_QUANT_REF_DECL(q4_k)
KF_QUANT_REF_DECL(q5_k)
KF_QUANT_REF_DECL(q6_k)
KF_QUANT_REF_DECL(q8_k)

#undef KF_QUANT_REF_DECL

/*
 * Q8_0 serves as a weight type (quantize_q8_0_ref: ggml's reference, roundf) and as the
 * activation format of the 32-element types (this one: 127/amax and round half to even, as
 * ggml's x86 path; the traits' from_f32 of Q8_0).  Q8_1 and Q8_K are activation formats only.
 */
void quantize_q8_0_act_ref(const float *src, void *dst, int64_t n);

/*
 * SIMD installation (quant_x86.c): overwrite to_f32 / vec_dot / from_f32 entries of the table with the best
 * versions this CPU runs.  Returns the level name ("avx512vnni", "avx2", "scalar").
 */
const char *quant_x86_install(struct quant_traits *table, int n);

#endif
