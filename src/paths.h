/*
 * paths.h — where kfchat keeps its files.
 *
 * Everything kfchat owns lives under one data directory, chosen as the XDG Base Directory
 * specification says: $XDG_DATA_HOME/kfchat when XDG_DATA_HOME is an absolute path, else
 * $HOME/.local/share/kfchat.  Models are in its models/ subdirectory, where ./quickstart and
 * scripts/install-model.sh put them (data/models.txt lists them).  The shell scripts apply the
 * same rule, so the program and the installer always agree.
 *
 * These functions only compute and create paths; they print nothing and never exit.
 */
#ifndef KF_PATHS_H
#define KF_PATHS_H

#include <stddef.h>
#include <sys/types.h>

/* File name of the default model inside <data dir>/models (the first entry of data/models.txt). */
#define PATHS_DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

/*
 * Write the data directory ("$XDG_DATA_HOME/kfchat" or "$HOME/.local/share/kfchat", without a
 * trailing slash) into buf, n bytes including the NUL.  A relative XDG_DATA_HOME is ignored,
 * as the specification requires.  Does not create the directory (see paths_mkdir_p).
 * Returns STATUS_OK, or STATUS_INVALID when neither variable is usable (unset or empty) or
 * the path does not fit in n bytes; buf is then an empty string if n > 0.
 */
int paths_data_dir(char *buf, size_t n);

/*
 * Write "<data dir>/models/" PATHS_DEFAULT_MODEL_FILE into buf (n bytes including the NUL).
 * Does not check that the file exists.  Returns as paths_data_dir.
 */
int paths_default_model(char *buf, size_t n);

/*
 * Create dir and any missing parents, like `mkdir -p`.  The last component gets mode (less
 * the umask); parents get mode plus u+wx so that the next level can be made in them.
 * Existing directories are fine.  Returns STATUS_OK; STATUS_INVALID for an empty or too long
 * path; STATUS_IO when a mkdir fails or a component exists but is not a directory (errno
 * tells why: EACCES, ENOTDIR, ...).
 */
int paths_mkdir_p(const char *dir, mode_t mode);

#endif
