/*
 * testutil.h — small helpers shared by kfchat's C tests: where test data and built programs are,
 * a private temporary directory, whole-file I/O, and running a program with its output captured.
 *
 * `make check` exports KF_SRCDIR, KF_BUILDDIR and KF_TESTDATA; run by hand from the top of the
 * tree, the fallbacks (".", "../shared/testdata") find the same places.  Everything a test writes
 * goes under one mkdtemp directory in $TMPDIR (or /tmp), removed by testutil_tmpdir_remove unless
 * KF_KEEP_TMP is set, so that a failure can be inspected.
 */
#ifndef KF_TESTUTIL_H
#define KF_TESTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* $name, or fallback if it is unset or empty. */
static inline const char *testutil_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* Directory with the shared test data (vocab/, templates/); it may not exist. */
static inline const char *testutil_testdata(void)
{
    return testutil_env("KF_TESTDATA", "../shared/testdata");
}

/* Top build directory, where kfchat and kfchat-mkmodel are built. */
static inline const char *testutil_builddir(void)
{
    return testutil_env("KF_BUILDDIR", ".");
}

/* "dir/name" into buf (exits if it does not fit) and return buf. */
static inline char *testutil_path(char *buf, size_t n, const char *dir, const char *name)
{
    int r = snprintf(buf, n, "%s/%s", dir, name);
    if (r < 0 || (size_t)r >= n) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        exit(99);
    }
    return buf;
}

static inline int testutil_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static inline int testutil_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static inline int testutil_is_executable(const char *path)
{
    return testutil_is_file(path) && access(path, X_OK) == 0;
}

/* A fresh directory for this test's files; its path lives in a static buffer.  Exits on error. */
static inline const char *testutil_tmpdir(void)
{
    static char dir[4096];
    if (dir[0])
        return dir;
    snprintf(dir, sizeof(dir), "%s/kfchat-test-XXXXXX", testutil_env("TMPDIR", "/tmp"));
    if (!mkdtemp(dir)) {
        perror(dir);
        exit(99); /* "hard error" for the TAP driver */
    }
    return dir;
}

/* Remove path and, if it is a directory, everything under it (symlinks are not followed). */
static inline void testutil_rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *sub = malloc(n);
            if (!sub)
                break;
            snprintf(sub, n, "%s/%s", path, e->d_name);
            testutil_rm_tree(sub);
            free(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Remove the test's temporary directory, unless KF_KEEP_TMP is set. */
static inline void testutil_tmpdir_remove(const char *dir)
{
    if (getenv("KF_KEEP_TMP")) {
        printf("# kept %s\n", dir);
        return;
    }
    testutil_rm_tree(dir);
}

/* Write n bytes to path (created or truncated).  0 on success. */
static inline int testutil_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = n == 0 || fwrite(data, 1, n, f) == n; /* data may be NULL when n is 0 */
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* The whole (regular) file, NUL-terminated, malloc'd, length in *len if len; NULL on error. */
static inline char *testutil_read_file(const char *path, size_t *len)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
        buf = malloc((size_t)st.st_size + 1);
    if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[st.st_size] = 0;
    if (len)
        *len = (size_t)st.st_size;
    return buf;
}

/*
 * Run argv[0] (a path, not searched in PATH) with argv, stdin from /dev/null, stdout and stderr
 * both appended to out_path (or inherited if out_path is NULL).  Returns the exit status,
 * 128 + signal if it was killed, or -1 if it could not be started.
 */
static inline int testutil_run(char *const argv[], const char *out_path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, 0);
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd < 0)
                _exit(126);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st) == 127 ? -1 : WEXITSTATUS(st);
}

/* dir/name, from a pool keyed by name: the same name always gives the same stable string. */
static inline const char *testutil_tmp_file(const char *dir, const char *name)
{
    static char pool[48][512];
    static int used;
    char want[512];
    testutil_path(want, sizeof(want), dir, name);
    for (int i = 0; i < used; i++)
        if (strcmp(pool[i], want) == 0)
            return pool[i];
    if (used == 48)
        abort();
    memcpy(pool[used], want, sizeof(want));
    return pool[used++];
}

/*
 * max_i |a_i − b_i| / max_i |b_i|: the relative error of a vector of logits against a reference;
 * +inf if any difference is NaN.
 */
static inline double testutil_max_rel_diff(const float *a, const float *b, size_t n)
{
    double m = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / scale;
        if (isnan(d))
            return INFINITY;
        m = fmax(m, d);
    }
    return m;
}

#endif
