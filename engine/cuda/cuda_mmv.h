/*
 * cuda_mmv.h — the CUDA weight kernels: matrix-vector products of quantized weights (decode),
 * dequantization of weights to f16 (prompt batches go through cuBLAS), and the activation
 * quantizer they share.  Device code only (included by .cu files); the host-callable test entry
 * points at the end are plain C.
 *
 * Weights are on the device as GGUF stores them: n rows of k elements, each row
 * quant_row_size(type, k) bytes of ggml blocks (engine/quant.h), with one exception made right
 * after the upload by cuda_mmv_pack: a Q4_0 or Q8_0 row of a multiple of 8 blocks, or a Q6_K
 * row of a multiple of 8 super-blocks, keeps each run of 8 blocks field by field, scales first
 * (cuda_mmv_grouped; the same bytes per row, reordered, so that a block's quants are aligned
 * 16-byte loads).  Activations for the integer
 * kernels are q8_1 blocks (struct blk_q8_1: half d, half s = d·Σqs, 32 int8), k/32 per row, made
 * by cuda_quantize_q8_1; float types (F32, F16, BF16) read the f32 activations directly.
 */
#ifndef KF_CUDA_MMV_H
#define KF_CUDA_MMV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* What happens to each output row r after the dot product d = W_r · x. */
enum mmv_act { MMV_ACT_NONE = 0, MMV_ACT_SILU = 1, MMV_ACT_GELU = 2 };

struct mmv_epilogue {
    const float *bias;     /* y[r] = d + bias[r] (NULL: none) */
    const float *residual; /* then y[r] += residual[r] (NULL: none; may alias y) */
};

/* Does the GPU have kernels for this weight type? (mmv and dequant both) */
int cuda_mmv_supported(uint32_t type);

/* Does this type read q8_1 activations (1) or f32 (0)? */
int cuda_mmv_wants_q8_1(uint32_t type);

/* Is it one of the k-quants (super-blocks of 256, activations rounded per 256: ACT_Q8_256)? */
int cuda_mmv_is_kquant(uint32_t type);

/* Does the GPU keep this type with rows of k elements in runs of 8 blocks (Q4_0 and Q8_0 with
 * k % 256 == 0, Q6_K with k % 2048 == 0)? */
int cuda_mmv_grouped(uint32_t type, int64_t k);

/*
 * Turns n rows just uploaded as GGUF stores them into the GPU's layout (a no-op unless
 * cuda_mmv_grouped); every kernel here expects it, so call it once per weight, after its upload
 * and before any use.  0, or -1 if the launch failed.
 */
int cuda_mmv_pack(uint32_t type, void *w, int64_t k, int64_t n, cudaStream_t s);

/* x: rows × k floats (k % 32 == 0) -> rows × k/32 blk_q8_1, device pointers. */
void cuda_quantize_q8_1(const float *x, void *xq, int64_t k, int rows, cudaStream_t s);

/*
 * y[r] = W_r · x for r < n, one activation row; x (f32) and xq (its q8_1 form, may be NULL for
 * float types) are device pointers.  Returns 0 or -1 for an unsupported type.
 */
int cuda_mmv(uint32_t type, const void *w, int64_t k, int64_t n, const float *x, const void *xq,
             float *y, const struct mmv_epilogue *ep, cudaStream_t s);

/*
 * y[r] = act(Wg_r · x) · (Wu_r · x) for r < n: the gated FFN's two products in one launch
 * (both weights of the same type and shape).
 */
int cuda_mmv_glu(uint32_t type, const void *wg, const void *wu, int64_t k, int64_t n,
                 const float *x, const void *xq, enum mmv_act act, float *y, cudaStream_t s);

/*
 * y[0 .. n1) = W1 · x and y[n1 .. n1 + n2) = W2 · x in one launch, for two k-quant weights of
 * different types over the same rounded activation xq (the layers of Q4_K_M and Q5_K_M whose v
 * is Q6_K); each row's value is cuda_mmv's, bit for bit.  0; 1 where this pair of types has no
 * combined kernel (then run them one by one); -1 for a bad shape or alignment.
 */
int cuda_mmv_pair(uint32_t t1, const void *w1, int64_t n1, uint32_t t2, const void *w2,
                  int64_t n2, int64_t k, const void *xq, float *y, cudaStream_t s);

/* out (n × k halves, row-major) = W dequantized; for cuBLAS.  0 or -1 for unsupported types. */
int cuda_dequant_f16(uint32_t type, const void *w, int64_t k, int64_t n, __half *out,
                     cudaStream_t s);

/*
 * The same products for `rows` tokens at once (q8_1 types: cuda_mmv_wants_q8_1): xq holds their
 * q8_1 rows ((k/32)·36 bytes each), y (and the epilogue's residual) rows of n floats.  Each
 * weight is read once per 4 tokens and multiplied exactly as in decoding.
 */
int cuda_mmv_rows(uint32_t type, const void *w, int64_t k, int64_t n, int rows, const void *xq,
                  float *y, const struct mmv_epilogue *ep, cudaStream_t s);
int cuda_mmv_glu_rows(uint32_t type, const void *wg, const void *wu, int64_t k, int64_t n,
                      int rows, const void *xq, enum mmv_act act, float *y, cudaStream_t s);

/*
 * Prompt batches on the int8 tensor cores (cuda_mmq.cu): y (rows × n, row-major) = the same
 * products for `rows` tokens of q8_1 activations xq, with the epilogue (ep may be NULL).
 * cuda_mmq_supported: the type has the kernel and the GPU the instructions (sm_80 or newer).
 * 0, or -1 for an unsupported type or shape.
 */
int cuda_mmq_supported(uint32_t type);
int cuda_mmq(uint32_t type, const void *w, int64_t k, int64_t n, int rows, const void *xq,
             float *y, const struct mmv_epilogue *ep, cudaStream_t s);
/*
 * The same products on f16 operands (cuda_mmf.cu): xh holds the tokens' activations rounded as
 * for cuBLAS (rows × k halves), the weights are dequantized in shared memory as
 * cuda_dequant_f16 writes them.  part (part_floats, may be NULL) is scratch for splitting k when
 * the grid would leave SMs idle.  The types of cuda_mmq_supported.
 */
int cuda_mmf(uint32_t type, const void *w, int64_t k, int64_t n, int rows, const __half *xh,
             float *y, const struct mmv_epilogue *ep, float *part, size_t part_floats,
             cudaStream_t s);
#endif

#ifdef __cplusplus
extern "C" {
#endif
/*
 * Host-side test entry points (tests/test_cuda_mmv.c): copy a host weight (n rows of k elements
 * of `type`) and one host activation row to the GPU, run the kernel, copy the result back.
 * act < 0: plain cuda_mmv (w2 ignored); act >= 0: cuda_mmv_glu with w2 as the up weight.
 * Return 0, or -1 with a one-line reason in err.
 */
int cuda_test_mmv(uint32_t type, const void *w, const void *w2, int64_t k, int64_t n,
                  const float *x, int act, float *y, char *err, size_t errlen);
int cuda_test_dequant(uint32_t type, const void *w, int64_t k, int64_t n, float *out, char *err,
                      size_t errlen);
/* cuda_test_mmv with the epilogue (act < 0 only): bias (NULL: none) and a residual (NULL:
 * none) that is placed in y on the device first, so that residual aliases y as in the model. */
int cuda_test_mmv_ep(uint32_t type, const void *w, const void *w2, int64_t k, int64_t n,
                     const float *x, int act, const float *bias, const float *residual, float *y,
                     char *err, size_t errlen);
/* cuda_mmv_rows (act < 0) or cuda_mmv_glu_rows (act >= 0) over `rows` tokens x (rows × k),
 * or with mmq 1 cuda_mmq, 2 cuda_mmf on x's f16 rounding (act < 0 only), into y_rows, and the decode kernel token by token
 * into y_one (both rows × n; bias and a residual, rows × n, as cuda_test_mmv_ep).  q8_1 types
 * only. */
int cuda_test_mmv_rows(uint32_t type, const void *w, const void *w2, int64_t k, int64_t n,
                       int rows, const float *x, int act, const float *bias,
                       const float *residual, int mmq, float *y_rows, float *y_one, char *err,
                       size_t errlen);
/* cuda_mmv_pair over host weights w1 (n1 rows of t1) and w2 (n2 rows of t2) and one
 * activation row, rounded as the model rounds it for k-quants: y gets n1 + n2 floats.  0; 1
 * (with err) where the pair has no combined kernel; -1 with a one-line reason in err. */
int cuda_test_mmv_pair(uint32_t t1, const void *w1, int64_t n1, uint32_t t2, const void *w2,
                       int64_t n2, int64_t k, const float *x, float *y, char *err,
                       size_t errlen);
/* Median microseconds of one cuda_mmv launch (n × k of type, weights from w), over device copies
 * that L2 cannot hold, timed with events around graph replays. */
int cuda_bench_mmv(uint32_t type, const void *w, int64_t k, int64_t n, double *us, char *err,
                   size_t errlen);
#ifdef __cplusplus
}
#endif

#endif
