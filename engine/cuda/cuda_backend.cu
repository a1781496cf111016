/*
 * cuda_backend.cu — CUDA backend entry points.  For now: device discovery, which kfchat uses to
 * report whether a usable GPU is present.  The kernels of the forward pass come with the CUDA
 * backend work (issue "CUDA backend").
 */
#include <cstdio>

#include <cuda_runtime.h>

#include "cuda/cuda_backend.h"

extern "C" int cuda_probe(char *buf, size_t n)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        if (buf && n)
            snprintf(buf, n, "no usable CUDA device (%s)",
                     err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        cudaGetLastError(); /* clear the sticky error so later probes start clean */
        return 0;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        if (buf && n)
            snprintf(buf, n, "CUDA device 0: properties unavailable");
        return count;
    }
    if (buf && n)
        snprintf(buf, n, "%s (sm_%d%d, %.1f GiB, %d SMs)%s", prop.name, prop.major, prop.minor,
                 prop.totalGlobalMem / 1073741824.0, prop.multiProcessorCount,
                 count > 1 ? " and more" : "");
    return count;
}
