/*
 * paths.c — the data directory, the default model path and `mkdir -p`.
 *
 * The rule for the data directory must stay the same as in quickstart and
 * scripts/install-model.sh, which install the models the program then looks for.
 */
#include "config.h"
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "status.h"

/* snprintf "<base><suffix>" into buf, dropping the trailing slashes of base (suffix starts
 * with one). */
static int join(char *buf, size_t n, const char *base, const char *suffix)
{
    size_t len = strlen(base);
    int w;

    while (len > 0 && base[len - 1] == '/')
        len--;
    w = snprintf(buf, n, "%.*s%s", (int)len, base, suffix);
    if (w < 0 || (size_t)w >= n) {
        buf[0] = '\0';
        return STATUS_INVALID;
    }
    return STATUS_OK;
}

int paths_data_dir(char *buf, size_t n)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");

    if (!buf || n == 0)
        return STATUS_INVALID;
    buf[0] = '\0';
    if (xdg && xdg[0] == '/')
        return join(buf, n, xdg, "/kfchat");
    if (home && home[0] != '\0')
        return join(buf, n, home, "/.local/share/kfchat");
    return STATUS_INVALID;
}

int paths_default_model(char *buf, size_t n)
{
    char dir[PATH_MAX];
    int rc = paths_data_dir(dir, sizeof dir);

    if (rc != STATUS_OK) {
        if (buf && n)
            buf[0] = '\0';
        return rc;
    }
    return join(buf, n, dir, "/models/" PATHS_DEFAULT_MODEL_FILE);
}

/* mkdir that accepts an existing directory (and only a directory). */
static int mkdir_one(const char *path, mode_t mode)
{
    struct stat st;

    if (mkdir(path, mode) == 0)
        return STATUS_OK;
    if (errno != EEXIST)
        return STATUS_IO;
    if (stat(path, &st) != 0)
        return STATUS_IO;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return STATUS_IO;
    }
    return STATUS_OK;
}

int paths_mkdir_p(const char *dir, mode_t mode)
{
    char path[PATH_MAX];
    size_t len;
    char *p;
    int rc;

    if (!dir || dir[0] == '\0')
        return STATUS_INVALID;
    len = strlen(dir);
    if (len >= sizeof path) {
        errno = ENAMETOOLONG;
        return STATUS_INVALID;
    }
    while (len > 1 && dir[len - 1] == '/')
        len--;
    memcpy(path, dir, len);
    path[len] = '\0';

    /* Walk the parents left to right; "a//b" and a leading "/" give empty names, skipped. */
    for (p = path + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        rc = mkdir_one(path, mode | S_IWUSR | S_IXUSR);
        *p = '/';
        if (rc != STATUS_OK)
            return rc;
    }
    return mkdir_one(path, mode);
}
