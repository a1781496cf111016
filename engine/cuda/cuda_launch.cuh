/*
 * cuda_launch.cuh — how the backend launches its kernels: programmatic dependent launch (PDL).
 *
 * A decode step is a chain of ~10 kernels per layer, most of them a few microseconds long, so
 * the gaps between them (drain the last blocks, launch, ramp up the loads) cost as much as the
 * work.  On compute capability 9.0+ every kernel is launched with programmatic stream
 * serialization: the next kernel's blocks may start while the previous kernel finishes, and wait
 * in kgrid_begin() until the previous grid has completed and its writes are visible, so that the
 * launch and the scheduling of the blocks leave the critical path.  (Asking L2 for a product's
 * weights before that wait, with prefetch.global.L2, was tried: decoding ran 5-15% slower.)
 *
 * The contract every kernel launched by klaunch keeps: kgrid_begin() runs in every block before
 * the block reads anything an earlier kernel wrote or writes anything an earlier kernel reads.
 * Because each grid waits for its predecessor to complete, completion is ordered along the
 * stream and a kernel may read what any earlier kernel wrote.  One exception, kept on purpose:
 * what was written before the current forward call began (the cache of earlier steps, the step
 * record copied in before the graph runs) may be read before the wait, since every call ends by
 * synchronising with the host (k_dec_short asks for its keys and values that way while the Q/K/V
 * products finish).  kgrid_begin() also allows the next
 * kernel to launch: it can only be scheduled once every block of this one has started, so
 * waiting blocks never keep this grid from running.
 *
 * The device code is compiled for sm_90 and as compute_90 PTX (what newer GPUs JIT); the
 * compute_75 PTX has no wait, and PDL is only requested where the device reports 9.0 or more.
 * KF_CUDA_PDL=0 turns it off (for comparisons).
 */
#ifndef KF_CUDA_LAUNCH_CUH
#define KF_CUDA_LAUNCH_CUH

#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

/* Wait for the previous kernel in the stream, then let the next one launch. */
__device__ __forceinline__ void kgrid_begin()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* The current device's compute capability major number (0 if it cannot be read). */
static inline int kdevice_major(void)
{
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        return 0;
    return major;
}

/* The current device's SM count, read once per translation unit (132, an H100's, if it cannot
 * be read): grids sized to fill the GPU in one wave. */
static inline int kdevice_sms(void)
{
    static int nsm = 0;
    if (!nsm) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            nsm = 132;
    }
    return nsm;
}

/* Whether the current device takes PDL launches (and KF_CUDA_PDL does not say 0). */
static inline int klaunch_pdl(void)
{
    const char *e = getenv("KF_CUDA_PDL");
    if (e && !strcmp(e, "0"))
        return 0;
    return kdevice_major() >= 9;
}

/* kernel<<<grid, block, smem, s>>>(args...), with PDL where klaunch_pdl() allows it. */
template <typename... P, typename... A>
static inline cudaError_t klaunch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                  cudaStream_t s, A &&...args)
{
    cudaLaunchConfig_t c = {};
    c.gridDim = grid;
    c.blockDim = block;
    c.dynamicSmemBytes = smem;
    c.stream = s;
    cudaLaunchAttribute at[1] = {};
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    c.attrs = at;
    c.numAttrs = klaunch_pdl() ? 1 : 0;
    return cudaLaunchKernelEx(&c, kernel, static_cast<A &&>(args)...);
}

#endif
