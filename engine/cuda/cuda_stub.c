/*
 * cuda_stub.c — stands in for the CUDA backend when kfchat is configured without CUDA, so the
 * rest of the program can ask "is there a GPU?" unconditionally.
 */
#include "config.h"

#include <stdio.h>

#include "cuda/cuda_backend.h"

int cuda_probe(char *buf, size_t n)
{
    if (buf && n)
        snprintf(buf, n, "kfchat was built without CUDA");
    return 0;
}
