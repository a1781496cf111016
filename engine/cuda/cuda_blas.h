/*
 * cuda_blas.h — cuBLAS as the CUDA backend uses it: the five calls it makes, through pointers
 * that cuda_blas_open fills when a model's GPU part is built.  CUDA sources only.
 *
 * Why not link it: libcublas pulls in libcublasLt, over 500 MB of code, and the dynamic loader's
 * relocations alone leave about 210 MiB of it resident in every process that links it, a
 * CPU-only chat or `kfchat --version` included.  Opened here, it costs nothing until a GPU is
 * used.
 */
#ifndef KF_CUDA_BLAS_H
#define KF_CUDA_BLAS_H

#include <cstddef>

#include <cublas_v2.h>

/* the exported cublasGemmEx (C++ also sees an inline overload taking a cudaDataType compute type) */
typedef cublasStatus_t (*cuda_blas_gemm_ex_fn)(cublasHandle_t, cublasOperation_t,
                                               cublasOperation_t, int, int, int, const void *,
                                               const void *, cudaDataType, int, const void *,
                                               cudaDataType, int, const void *, void *,
                                               cudaDataType, int, cublasComputeType_t,
                                               cublasGemmAlgo_t);

struct cuda_blas {
    void *lib; /* the dlopen handle, NULL while closed */
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSetMathMode) set_math_mode;
    cuda_blas_gemm_ex_fn gemm_ex;
};

/* Load the library (by the soname configure found) and its five functions into b; 0, or -1
 * with a one-line reason in err.  b is closed on failure. */
int cuda_blas_open(struct cuda_blas *b, char *err, size_t errlen);
/* Drop b's reference (the library itself stays mapped: RTLD_NODELETE).  Safe on a closed b. */
void cuda_blas_close(struct cuda_blas *b);

#endif
