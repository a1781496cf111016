/*
 * cuda_mmv_test.cu — the host entry points of tests/test_cuda_mmv.c over the weight kernels of
 * cuda_mmv.cu: host weights and activations copied to the GPU (reordered there as the model
 * reorders them, cuda_mmv_pack), one product or dequantization, the result copied back; and
 * the per-product microbenchmark of `test_cuda_mmv --bench`.
 */
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>
#include <algorithm>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define _Static_assert static_assert /* quant.h is C11 */
#include "quant.h"
#undef _Static_assert
#include "cuda/cuda_mmv.h"
#include "cuda/cuda_ops.h"
#include "cuda_internal.h" /* CU_TRY */

// ---- host test and benchmark entry points ---------------------------------------------------

#define MMV_PAD 64 /* bytes past each weight copy, so word loads of a 2-aligned tail stay inside */

static size_t mmv_row_bytes(uint32_t type, int64_t k)
{
    if (!cuda_mmv_supported(type) || k <= 0 || k % quant_traits_get(type)->blck != 0)
        return 0;
    return quant_row_size(type, k);
}

/* A test's weight copies on the device (w2: GLU's up weight, or NULL), MMV_PAD bytes past each,
 * reordered as the model reorders them. */
static cudaError_t mmv_test_weights(uint32_t type, int64_t k, int64_t n, const void *w,
                                    const void *w2, size_t wbytes, uint8_t **dw, uint8_t **dw2)
{
    const void *src[2] = { w, w2 };
    uint8_t **dst[2] = { dw, dw2 };
    cudaError_t e = cudaSuccess;
    for (int i = 0; i < 2 && src[i] && e == cudaSuccess; i++) {
        e = cudaMalloc(dst[i], wbytes + MMV_PAD);
        if (e == cudaSuccess)
            e = cudaMemcpy(*dst[i], src[i], wbytes, cudaMemcpyHostToDevice);
        if (e == cudaSuccess && cuda_mmv_pack(type, *dst[i], k, n, 0))
            e = cudaErrorLaunchFailure;
    }
    return e == cudaSuccess ? cudaDeviceSynchronize() : e;
}

/* Bytes of n rows of k elements of type, or 0 with the one-line reason in err. */
static size_t mmv_test_bytes(uint32_t type, int64_t k, int64_t n, char *err, size_t errlen)
{
    const size_t b = mmv_row_bytes(type, k) * (size_t)n;
    if (!b)
        snprintf(err, errlen, "type %u with k=%lld not supported", type, (long long)k);
    return b;
}

/* rows activation rows dx (k floats each) rounded into dxq as the model rounds them for type:
 * the CPU's Q8_K (f32 scale per 256) for the k-quants, q8_1 for the others. */
static void mmv_test_round(uint32_t type, const float *dx, void *dxq, int64_t k, int rows,
                           cudaStream_t s)
{
    if (cuda_mmv_is_kquant(type))
        ops_round_act(dx, rows, k, ACT_Q8_256, dxq, NULL, s);
    else
        cuda_quantize_q8_1(dx, dxq, k, rows, s);
}

/* One activation row x (k floats) on the device as dx, and in dxq rounded as the model rounds
 * it for type. */
static cudaError_t mmv_test_x(uint32_t type, const float *x, int64_t k, float **dx, uint8_t **dxq)
{
    cudaError_t e = cudaMalloc(dx, (size_t)k * sizeof(float));
    if (e == cudaSuccess)
        e = cudaMemcpy(*dx, x, (size_t)k * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMalloc(dxq, (size_t)k / 32 * 36 + MMV_PAD);
    if (e == cudaSuccess) {
        mmv_test_round(type, *dx, *dxq, k, 1, 0);
        e = cudaGetLastError();
    }
    return e;
}

/* n output floats on the device, NaN so that rows a kernel leaves unwritten fail. */
static cudaError_t mmv_test_y(size_t n, float **dy)
{
    cudaError_t e = cudaMalloc(dy, n * sizeof(float));
    return e == cudaSuccess ? cudaMemset(*dy, 0xff, n * sizeof(float)) : e;
}

extern "C" int cuda_test_mmv_ep(uint32_t type, const void *w, const void *w2, int64_t k,
                                int64_t n, const float *x, int act, const float *bias,
                                const float *residual, float *y, char *err, size_t errlen)
{
    const size_t wbytes = mmv_test_bytes(type, k, n, err, errlen);
    const int glu = act >= 0;
    uint8_t *dw = nullptr, *dw2 = nullptr, *dxq = nullptr;
    float *dx = nullptr, *dy = nullptr, *dbias = nullptr;
    int rc = -1;
    struct mmv_epilogue ep = { nullptr, nullptr };
    if (!wbytes)
        return -1;
    CU_TRY(mmv_test_weights(type, k, n, w, glu ? w2 : nullptr, wbytes, &dw, &dw2));
    CU_TRY(mmv_test_x(type, x, k, &dx, &dxq));
    CU_TRY(mmv_test_y((size_t)n, &dy));
    if (bias) {
        CU_TRY(cudaMalloc(&dbias, (size_t)n * sizeof(float)));
        CU_TRY(cudaMemcpy(dbias, bias, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
        ep.bias = dbias;
    }
    if (residual) { /* the residual lives in y itself, as the forward pass uses it */
        CU_TRY(cudaMemcpy(dy, residual, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
        ep.residual = dy;
    }
    if ((glu ? cuda_mmv_glu(type, dw, dw2, k, n, dx, dxq, (enum mmv_act)act, dy, 0)
             : cuda_mmv(type, dw, k, n, dx, dxq, dy, &ep, 0)) != 0) {
        snprintf(err, errlen, "cuda_mmv%s refused type %u k=%lld n=%lld", glu ? "_glu" : "",
                 type, (long long)k, (long long)n);
        goto fail;
    }
    CU_TRY(cudaGetLastError());
    CU_TRY(cudaDeviceSynchronize());
    CU_TRY(cudaMemcpy(y, dy, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    rc = 0;
fail:
    cudaFree(dw);
    cudaFree(dw2);
    cudaFree(dx);
    cudaFree(dxq);
    cudaFree(dy);
    cudaFree(dbias);
    return rc;
}

extern "C" int cuda_test_mmv(uint32_t type, const void *w, const void *w2, int64_t k, int64_t n,
                             const float *x, int act, float *y, char *err, size_t errlen)
{
    return cuda_test_mmv_ep(type, w, w2, k, n, x, act, nullptr, nullptr, y, err, errlen);
}

extern "C" int cuda_test_mmv_pair(uint32_t t1, const void *w1, int64_t n1, uint32_t t2,
                                  const void *w2, int64_t n2, int64_t k, const float *x,
                                  float *y, char *err, size_t errlen)
{
    const size_t b1 = mmv_row_bytes(t1, k) * (size_t)n1, b2 = mmv_row_bytes(t2, k) * (size_t)n2;
    uint8_t *dw1 = nullptr, *dw2 = nullptr, *dxq = nullptr;
    float *dx = nullptr, *dy = nullptr;
    int rc = -1;
    if (!b1 || !b2 || !cuda_mmv_is_kquant(t1) || !cuda_mmv_is_kquant(t2)) {
        snprintf(err, errlen, "types %u, %u with k=%lld not supported", t1, t2, (long long)k);
        return -1;
    }
    CU_TRY(mmv_test_weights(t1, k, n1, w1, nullptr, b1, &dw1, nullptr));
    CU_TRY(mmv_test_weights(t2, k, n2, w2, nullptr, b2, &dw2, nullptr));
    CU_TRY(mmv_test_x(t1, x, k, &dx, &dxq)); /* both k-quants: one rounding */
    CU_TRY(mmv_test_y((size_t)(n1 + n2), &dy));
    rc = cuda_mmv_pair(t1, dw1, n1, t2, dw2, n2, k, dxq, dy, 0);
    if (rc != 0) {
        snprintf(err, errlen, "cuda_mmv_pair gave %d for types %u, %u k=%lld", rc, t1, t2,
                 (long long)k);
        goto fail;
    }
    rc = -1;
    CU_TRY(cudaGetLastError());
    CU_TRY(cudaDeviceSynchronize());
    CU_TRY(cudaMemcpy(y, dy, (size_t)(n1 + n2) * sizeof(float), cudaMemcpyDeviceToHost));
    rc = 0;
fail:
    cudaFree(dw1);
    cudaFree(dw2);
    cudaFree(dx);
    cudaFree(dxq);
    cudaFree(dy);
    return rc;
}

extern "C" int cuda_test_mmv_rows(uint32_t type, const void *w, const void *w2, int64_t k,
                                  int64_t n, int rows, const float *x, int act,
                                  const float *bias, const float *residual, int mmq,
                                  float *y_rows, float *y_one, char *err, size_t errlen)
{
    const size_t wbytes = mmv_row_bytes(type, k) * (size_t)n, qrow = (size_t)k / 32 * 36;
    const size_t ny = (size_t)rows * (size_t)n;
    const int glu = act >= 0;
    uint8_t *dw = nullptr, *dw2 = nullptr, *dxq = nullptr;
    float *dx = nullptr, *dy[2] = { nullptr, nullptr }, *dbias = nullptr, *dpart = nullptr;
    __half *dxh = nullptr;
    int rc = -1;
    if (!wbytes || !cuda_mmv_wants_q8_1(type) || rows < 1 || (mmq && glu)) {
        snprintf(err, errlen, "type %u with k=%lld, %d rows not supported", type, (long long)k,
                 rows);
        return -1;
    }
    CU_TRY(mmv_test_weights(type, k, n, w, glu ? w2 : nullptr, wbytes, &dw, &dw2));
    CU_TRY(cudaMalloc(&dx, (size_t)rows * k * sizeof(float)));
    CU_TRY(cudaMemcpy(dx, x, (size_t)rows * k * sizeof(float), cudaMemcpyHostToDevice));
    CU_TRY(cudaMalloc(&dxq, rows * qrow + MMV_PAD));
    if (bias) {
        CU_TRY(cudaMalloc(&dbias, (size_t)n * sizeof(float)));
        CU_TRY(cudaMemcpy(dbias, bias, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    }
    for (int i = 0; i < 2; i++) {
        CU_TRY(cudaMalloc(&dy[i], ny * sizeof(float)));
        CU_TRY(cudaMemset(dy[i], 0xff, ny * sizeof(float))); /* NaN: unwritten rows fail */
        if (residual) /* in y itself, as the forward pass has it */
            CU_TRY(cudaMemcpy(dy[i], residual, ny * sizeof(float), cudaMemcpyHostToDevice));
    }
    mmv_test_round(type, dx, dxq, k, rows, 0);
    if (mmq == 2) { /* the f16 operand (the activations, not rounded to 8 bits: the prompt
                     * path's), and split-k scratch */
        CU_TRY(cudaMalloc(&dxh, (size_t)rows * k * sizeof(__half)));
        CU_TRY(cudaMalloc(&dpart, ny * 16 * sizeof(float)));
        ops_round_act(dx, rows, k, cuda_mmv_is_kquant(type) ? ACT_Q8_256 : ACT_Q8_32, NULL, dxh, 0);
    }
    {
        struct mmv_epilogue ep = { dbias, residual ? dy[0] : nullptr };
        if (mmq == 2 ? cuda_mmf(type, dw, k, n, rows, dxh, dy[0], &ep, dpart, ny * 16, 0)
            : mmq    ? cuda_mmq(type, dw, k, n, rows, dxq, dy[0], &ep, 0)
            : glu ? cuda_mmv_glu_rows(type, dw, dw2, k, n, rows, dxq, (enum mmv_act)act, dy[0], 0)
                  : cuda_mmv_rows(type, dw, k, n, rows, dxq, dy[0], &ep, 0)) {
            snprintf(err, errlen, "%s refused type %u",
                     mmq == 2 ? "cuda_mmf" : mmq ? "cuda_mmq" : "cuda_mmv_rows", type);
            goto fail;
        }
    }
    for (int t = 0; t < rows; t++) { /* the decode kernel, token by token */
        struct mmv_epilogue ep = { dbias, residual ? dy[1] + (size_t)t * n : nullptr };
        const uint8_t *xq = dxq + t * qrow;
        if (glu ? cuda_mmv_glu(type, dw, dw2, k, n, nullptr, xq, (enum mmv_act)act,
                               dy[1] + (size_t)t * n, 0)
                : cuda_mmv(type, dw, k, n, nullptr, xq, dy[1] + (size_t)t * n, &ep, 0)) {
            snprintf(err, errlen, "cuda_mmv refused type %u", type);
            goto fail;
        }
    }
    CU_TRY(cudaGetLastError());
    CU_TRY(cudaDeviceSynchronize());
    CU_TRY(cudaMemcpy(y_rows, dy[0], ny * sizeof(float), cudaMemcpyDeviceToHost));
    CU_TRY(cudaMemcpy(y_one, dy[1], ny * sizeof(float), cudaMemcpyDeviceToHost));
    rc = 0;
fail:
    cudaFree(dw);
    cudaFree(dw2);
    cudaFree(dx);
    cudaFree(dxq);
    cudaFree(dy[0]);
    cudaFree(dy[1]);
    cudaFree(dxh);
    cudaFree(dpart);
    cudaFree(dbias);
    return rc;
}

extern "C" int cuda_test_dequant(uint32_t type, const void *w, int64_t k, int64_t n, float *out,
                                 char *err, size_t errlen)
{
    const size_t wbytes = mmv_test_bytes(type, k, n, err, errlen);
    const size_t cnt = (size_t)k * (size_t)n;
    uint8_t *dw = nullptr;
    __half *dout = nullptr;
    std::vector<__half> h;
    int rc = -1;
    if (!wbytes)
        return -1;
    CU_TRY(mmv_test_weights(type, k, n, w, nullptr, wbytes, &dw, nullptr));
    CU_TRY(cudaMalloc(&dout, cnt * sizeof(__half)));
    CU_TRY(cudaMemset(dout, 0xff, cnt * sizeof(__half))); /* half NaN */
    if (cuda_dequant_f16(type, dw, k, n, dout, 0) != 0) {
        snprintf(err, errlen, "cuda_dequant_f16 refused type %u", type);
        goto fail;
    }
    CU_TRY(cudaGetLastError());
    CU_TRY(cudaDeviceSynchronize());
    h.resize(cnt);
    CU_TRY(cudaMemcpy(h.data(), dout, cnt * sizeof(__half), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < cnt; i++)
        out[i] = __half2float(h[i]);
    rc = 0;
fail:
    cudaFree(dw);
    cudaFree(dout);
    return rc;
}

/*
 * Median time of one cuda_mmv launch over n × k weights of `type` (contents from w, one host
 * copy), rotating among enough device copies that L2 cannot hold them: each sample replays a
 * captured graph of `per` launches and is timed with events.
 */
extern "C" int cuda_bench_mmv(uint32_t type, const void *w, int64_t k, int64_t n, double *us,
                              char *err, size_t errlen)
{
    const size_t wbytes = mmv_test_bytes(type, k, n, err, errlen);
    const size_t stride = (wbytes + MMV_PAD + 255) / 256 * 256;
    int copies = (int)std::min<size_t>(64, std::max<size_t>(2, (size_t)400000000 / stride + 1));
    const int per = std::max(copies, 32), samples = 30;
    uint8_t *dw = nullptr, *dxq = nullptr;
    float *dx = nullptr, *dy = nullptr;
    cudaStream_t s = nullptr;
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    std::vector<float> hx((size_t)k), t(samples);
    int rc = -1;
    if (!wbytes)
        return -1;
    for (int64_t i = 0; i < k; i++)
        hx[i] = (float)((i * 2654435761u % 1000) / 500.0 - 1.0);
    CU_TRY(cudaMalloc(&dw, stride * copies));
    for (int c = 0; c < copies; c++) {
        CU_TRY(cudaMemcpy(dw + stride * c, w, wbytes, cudaMemcpyHostToDevice));
        if (cuda_mmv_pack(type, dw + stride * c, k, n, 0)) {
            snprintf(err, errlen, "cuda_mmv_pack failed");
            goto fail;
        }
    }
    CU_TRY(cudaMalloc(&dx, (size_t)k * sizeof(float)));
    CU_TRY(cudaMemcpy(dx, hx.data(), (size_t)k * sizeof(float), cudaMemcpyHostToDevice));
    CU_TRY(cudaMalloc(&dxq, (size_t)k / 32 * 36 + MMV_PAD));
    CU_TRY(cudaMalloc(&dy, (size_t)n * sizeof(float)));
    CU_TRY(cudaStreamCreate(&s));
    CU_TRY(cudaEventCreate(&e0));
    CU_TRY(cudaEventCreate(&e1));
    mmv_test_round(type, dx, dxq, k, 1, s);
    CU_TRY(cudaGetLastError());
    CU_TRY(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < per; i++)
        if (cuda_mmv(type, dw + stride * (i % copies), k, n, dx, dxq, dy, nullptr, s) != 0)
            break;
    CU_TRY(cudaStreamEndCapture(s, &g));
    CU_TRY(cudaGetLastError());
    CU_TRY(cudaGraphInstantiate(&ge, g, 0));
    CU_TRY(cudaGraphLaunch(ge, s)); /* warm-up */
    CU_TRY(cudaStreamSynchronize(s));
    for (int i = 0; i < samples; i++) {
        CU_TRY(cudaEventRecord(e0, s));
        CU_TRY(cudaGraphLaunch(ge, s));
        CU_TRY(cudaEventRecord(e1, s));
        CU_TRY(cudaEventSynchronize(e1));
        CU_TRY(cudaEventElapsedTime(&t[i], e0, e1));
    }
    std::sort(t.begin(), t.end());
    *us = t[samples / 2] * 1000.0 / per;
    rc = 0;
fail:
    if (ge)
        cudaGraphExecDestroy(ge);
    if (g)
        cudaGraphDestroy(g);
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    if (s)
        cudaStreamDestroy(s);
    cudaFree(dw);
    cudaFree(dx);
    cudaFree(dxq);
    cudaFree(dy);
    return rc;
}
