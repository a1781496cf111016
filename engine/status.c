/*
 * status.c — names of status codes and the single function every error origin goes through,
 * so that one breakpoint on status_set catches them all.
 */
#include "config.h"
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *status_str(int status)
{
    switch (status) {
    case STATUS_OK: return "ok";
    case STATUS_NOMEM: return "out of memory";
    case STATUS_IO: return "I/O error";
    case STATUS_FORMAT: return "bad file format";
    case STATUS_UNSUPPORTED: return "unsupported";
    case STATUS_INVALID: return "invalid argument";
    case STATUS_CUDA: return "CUDA error";
    case STATUS_DB: return "database error";
    case STATUS_NOT_FOUND: return "not found";
    case STATUS_CONTEXT_FULL: return "context full";
    case STATUS_STOPPED: return "stopped";
    default: return "unknown status";
    }
}

int status_set(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}
