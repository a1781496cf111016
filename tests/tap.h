/*
 * tap.h — a minimal TAP producer for kfchat's tests (run by automake's tap-driver.sh).
 * ok() prints "ok N - name" or "not ok N - name"; done_testing() prints the plan last and
 * returns the exit code.  skip_all() prints "1..0 # SKIP why".
 */
#ifndef KF_TAP_H
#define KF_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

static inline __attribute__((format(printf, 2, 3))) int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

static inline __attribute__((format(printf, 1, 2))) void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline void skip(const char *why)
{
    tap_n++;
    printf("ok %d # SKIP %s\n", tap_n, why);
}

static inline int skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    return 0;
}

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
