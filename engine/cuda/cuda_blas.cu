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
#ifndef KF_CUDA_LIBDIR
#define KF_CUDA_LIBDIR ""
#endif

static void *blas_dlopen(char *why, size_t whylen)
{
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
    /* the bare soname searches the program's run path (the toolkit's library directory, set at
     * link time), LD_LIBRARY_PATH and the system's cache */
    void *h = dlopen(KF_CUBLAS_SONAME, flags);
    if (h)
        return h;
    const char *e = dlerror();
    snprintf(why, whylen, "%s", e ? e : "not found");
    if (KF_CUDA_LIBDIR[0]) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", KF_CUDA_LIBDIR, KF_CUBLAS_SONAME);
        h = dlopen(path, flags);
    }
    return h;
}

int cuda_blas_open(struct cuda_blas *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    char why[512];
    b->lib = blas_dlopen(why, sizeof why);
    if (!b->lib) {
        snprintf(err, errlen, "cuBLAS: cannot load %s (%s)", KF_CUBLAS_SONAME, why);
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
