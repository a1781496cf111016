/*
 * threadpool.c — worker threads for data-parallel jobs, with low dispatch latency.
 *
 * Protocol.  The caller publishes (fn, arg), sets `pending` to the number of workers and bumps the
 * generation counter `gen`.  Each worker runs the job once per generation it sees and decrements
 * `pending`; the caller runs its own share as thread 0, then waits for `pending` to reach zero.
 * Because the caller waits for every worker before it starts the next generation, no worker can
 * skip a generation or run one twice.
 *
 * Waiting.  Both sides first spin (with PAUSE) for a bounded time, because during decoding the
 * next job usually arrives within microseconds and a futex wake-up costs tens of them.  After the
 * spin budget they block on a condition variable.  The blocking side announces itself in a
 * counter before re-checking the condition, and the waking side stores its condition before
 * reading that counter (both sequentially consistent), so one of the two always sees the other:
 * no lost wake-ups, and no mutex or syscall on the fast path.
 */
#include "config.h"
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/*
 * How long an idle thread spins before it sleeps.  Between two jobs of one decode step the caller
 * does only small serial work (norms, RoPE, sampling), well under this; across user turns the
 * workers sleep.  Spinning longer only burns a core that OpenBLAS or the UI might want.
 */
#define SPIN_NS_WORKER 1000000L
#define SPIN_NS_CALLER 2000000L
/*
 * After this much fruitless spinning, yield the CPU on every check: when the machine is
 * oversubscribed (more threads than cores, or other busy processes) the thread we are waiting
 * for may be runnable but preempted, and pure spinning would hold its core for a whole slice.
 */
#define SPIN_NS_PURE 20000L

struct worker {
    struct threadpool *pool;
    int ith;
    pthread_t tid;
};

struct threadpool {
    int n_threads;
    struct worker *workers;              /* n_threads - 1 entries */
    pthread_mutex_t mu;                  /* only guards the two condition variables */
    pthread_cond_t wake_cond;            /* workers sleep here waiting for a new generation */
    pthread_cond_t done_cond;            /* the caller sleeps here waiting for pending == 0 */

    /* Written by the caller once per job, read by workers after they see the new generation. */
    threadpool_fn_t fn;
    void *arg;
    int stop;

    /* Separate cache lines: workers poll gen while they write pending. */
    alignas(64) atomic_uint gen;
    atomic_int n_sleeping;               /* workers blocked (or about to block) on wake_cond */
    alignas(64) atomic_int pending;      /* workers that have not finished this generation */
    atomic_int caller_sleeping;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until gen differs from seen; return the new value. */
static unsigned wait_generation(struct threadpool *p, unsigned seen)
{
    unsigned g;
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
        /* reading the clock every iteration would dominate the loop */
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 > SPIN_NS_WORKER)
                break;
            else if (t - t0 > SPIN_NS_PURE)
                sched_yield();
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->n_sleeping, 1);
    while ((g = atomic_load(&p->gen)) == seen)
        pthread_cond_wait(&p->wake_cond, &p->mu);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *argp)
{
    struct worker *w = argp;
    struct threadpool *p = w->pool;
    unsigned seen = 0;

    for (;;) {
        seen = wait_generation(p, seen);
        if (p->stop)
            break;
        p->fn(p->arg, w->ith, p->n_threads);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cond);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Publish a new generation and wake sleeping workers if there are any. */
static void publish_generation(struct threadpool *p)
{
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake_cond);
        pthread_mutex_unlock(&p->mu);
    }
}

static void wait_workers(struct threadpool *p)
{
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        cpu_relax();
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 > SPIN_NS_CALLER)
                break;
            else if (t - t0 > SPIN_NS_PURE)
                sched_yield();
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_sleeping, 1);
    while (atomic_load(&p->pending) != 0)
        pthread_cond_wait(&p->done_cond, &p->mu);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->mu);
}

/* Stop the first n_started workers and release everything. */
static void pool_destroy(struct threadpool *p, int n_started)
{
    if (n_started > 0) {
        p->stop = 1;
        publish_generation(p);
        for (int i = 0; i < n_started; i++)
            pthread_join(p->workers[i].tid, NULL);
    }
    pthread_cond_destroy(&p->done_cond);
    pthread_cond_destroy(&p->wake_cond);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

struct threadpool *threadpool_new(int n_threads)
{
    struct threadpool *p;
    sigset_t all, old;
    int n_started = 0;

    if (n_threads < 1)
        n_threads = 1;
    p = aligned_alloc(64, (sizeof(*p) + 63) / 64 * 64);
    if (!p)
        return NULL;
    *p = (struct threadpool){ .n_threads = n_threads };
    atomic_init(&p->gen, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_sleeping, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake_cond, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    if (n_threads == 1)
        return p;

    p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers));
    if (!p->workers) {
        pool_destroy(p, 0);
        return NULL;
    }
    /* Workers inherit a fully blocked signal mask: SIGWINCH, SIGINT... belong to the UI thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; n_started < n_threads - 1; n_started++) {
        struct worker *w = &p->workers[n_started];
        w->pool = p;
        w->ith = n_started + 1;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (n_started < n_threads - 1) {
        pool_destroy(p, n_started);
        return NULL;
    }
    return p;
}

void threadpool_free(struct threadpool *p)
{
    if (p)
        pool_destroy(p, p->n_threads - 1);
}

int threadpool_n_threads(const struct threadpool *p)
{
    return p ? p->n_threads : 1;
}

void threadpool_run(struct threadpool *p, threadpool_fn_t fn, void *arg)
{
    if (!p || p->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    publish_generation(p);  /* seq_cst: fn, arg and pending are visible before gen changes */
    fn(arg, 0, p->n_threads);
    wait_workers(p);
}
