/*
 * threadpool.h — a fixed set of worker threads that run one data-parallel job at a time.
 *
 * The engine dispatches many tiny jobs (a decode step is ~10 jobs per layer), so a dispatch must
 * cost microseconds, not a futex round trip: idle workers spin on a generation counter for a short
 * while before they block on a condition variable.  The caller of threadpool_run takes part in the
 * job as thread 0 and returns only when every thread has finished, so a job's writes are visible
 * to the caller afterwards (and to the next job).
 *
 * Thread affinity: one thread at a time may call threadpool_run / threadpool_free on a pool
 * (the engine worker).  fn must not call threadpool_run on the same pool.
 */
#ifndef KF_THREADPOOL_H
#define KF_THREADPOOL_H

struct threadpool;

/* A job body: called once per thread with ith in [0, nth). */
typedef void (*threadpool_fn_t)(void *arg, int ith, int nth);

/*
 * Create a pool of n_threads threads, the caller included (n_threads - 1 workers are started;
 * 1 means everything runs on the caller).  n_threads < 1 is treated as 1.
 * Returns NULL if memory or threads could not be obtained.
 */
struct threadpool *threadpool_new(int n_threads);

/* Stop and join the workers, then free the pool.  NULL is a no-op. */
void threadpool_free(struct threadpool *p);

/* Number of threads that run each job (the caller included).  NULL counts as 1. */
int threadpool_n_threads(const struct threadpool *p);

/*
 * Run fn(arg, ith, nth) on every thread of the pool (the caller as ith 0) and wait for all of
 * them.  p == NULL runs fn(arg, 0, 1) on the caller.
 */
void threadpool_run(struct threadpool *p, threadpool_fn_t fn, void *arg);

#endif
