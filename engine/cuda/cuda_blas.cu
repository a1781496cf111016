/*
 * cuda_blas.cu — opens cuBLAS at run time for the CUDA backend (see cuda_blas.h for why).
 *
 * Each GPU model holds its own reference (dlopen counts them), so there is no process-wide state
 * here.  The library is opened RTLD_NODELETE: cuBLAS registers its kernels with the CUDA runtime,
 * which outlives any one model, so it must not be unmapped while the process runs.
 */
#include "config.h"

#include <cstdio>
#include <cstring>

#include <dlfcn.h>

#include "cuda_blas.h"

#ifndef KF_CUBLAS_SONAME
#define KF_CUBLAS_SONAME "libcublas.so"
#endif

int cuda_blas_open(struct cuda_blas *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    /* the soname alone: dlopen searches this program's run path (the toolkit's library
     * directory, set at link time), LD_LIBRARY_PATH and the system's cache */
    b->lib = dlopen(KF_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!b->lib) {
        const char *why = dlerror();
        snprintf(err, errlen, "cuBLAS: cannot load %s (%s)", KF_CUBLAS_SONAME,
                 why ? why : "not found");
        return -1;
    }
    /* the _v2 names are the ones cublas_v2.h maps cublasCreate etc. to */
    static const char *const names[] = { "cublasCreate_v2", "cublasDestroy_v2",
                                         "cublasSetStream_v2", "cublasSetMathMode",
                                         "cublasGemmEx" };
    void *fn[5];
    for (int i = 0; i < 5; i++) {
        fn[i] = dlsym(b->lib, names[i]);
        if (!fn[i]) {
            snprintf(err, errlen, "cuBLAS: %s has no %s", KF_CUBLAS_SONAME, names[i]);
            cuda_blas_close(b);
            return -1;
        }
    }
    b->create = (decltype(b->create))fn[0];
    b->destroy = (decltype(b->destroy))fn[1];
    b->set_stream = (decltype(b->set_stream))fn[2];
    b->set_math_mode = (decltype(b->set_math_mode))fn[3];
    b->gemm_ex = (decltype(b->gemm_ex))fn[4];
    return 0;
}

void cuda_blas_close(struct cuda_blas *b)
{
    if (b->lib)
        dlclose(b->lib);
    memset(b, 0, sizeof *b);
}
