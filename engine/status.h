/*
 * status.h — the status codes every fallible kfchat function returns.
 *
 * 0 is success, negative values are errors, positive values are non-fatal conditions the caller
 * must handle (as llama_decode does).  The human-readable detail of an error lives on the handle
 * that produced it (engine_errmsg, ...) or in a caller-supplied buffer for functions that fail
 * before a handle exists.
 */
#ifndef KF_STATUS_H
#define KF_STATUS_H

#include <stddef.h>

enum status {
    STATUS_OK = 0,
    STATUS_NOMEM = -1,       /* allocation or mmap failed */
    STATUS_IO = -2,          /* open/read/write/stat failed */
    STATUS_FORMAT = -3,      /* the file is not what it claims to be (bad magic, out of bounds) */
    STATUS_UNSUPPORTED = -4, /* well-formed, but a feature we do not implement */
    STATUS_INVALID = -5,     /* bad argument from the user (option value, prompt too long) */
    STATUS_CUDA = -6,        /* a CUDA call failed; the caller falls back to the CPU */
    STATUS_DB = -7,          /* SQLite error */
    STATUS_NOT_FOUND = -8,   /* a key, tensor or file that was required is absent */
    STATUS_CONTEXT_FULL = 1, /* no room left in the context; nothing was changed */
    STATUS_STOPPED = 2,      /* cancelled by the user */
};

/* A short constant description ("out of memory", ...) of a status code. */
const char *status_str(int status);

/* snprintf into err (if err && errlen) and return status: one line for one error origin. */
int status_set(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
