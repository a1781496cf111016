/*
 * cuda_backend.h — the C face of the CUDA backend.  Built from cuda_backend.cu with nvcc when
 * configure finds the toolkit, otherwise from cuda_stub.c, which reports that kfchat was built
 * without CUDA.  Only C types cross this boundary.
 */
#ifndef KF_CUDA_BACKEND_H
#define KF_CUDA_BACKEND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Probe the GPUs: returns the number of usable CUDA devices (0 if none or no driver) and writes
 * a one-line description of device 0 (name, compute capability, memory) or the reason there is
 * none into buf.
 */
int cuda_probe(char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
