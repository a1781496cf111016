/*
 * store_snapshot.c — engine state attached to a message, for exact resume.
 *
 * The blob is opaque (the engine's format, named by the caller's tag) and tied to a model
 * fingerprint; the store only keeps it safe: a CRC-32 of the raw bytes and their size are
 * stored next to it, so a damaged snapshot is reported (STATUS_FORMAT) instead of loaded,
 * and the application re-processes the transcript instead.
 *
 * Compression.  zlib (deflate level 1), only when it saves at least 10%: KV caches are f16
 * or quantised numbers, where deflate gains mostly through its Huffman stage on the skewed
 * exponent and scale bytes (an LZ-only coder would find few repeats), and often gains
 * nothing.  A 256 KiB probe from the middle of the blob decides first, so an incompressible
 * snapshot costs a fraction of a millisecond instead of a full pass.  Level 1 runs at tens of
 * MB/s and a snapshot is written once per turn; zlib is on every system (and gives crc32).
 *
 * Retention.  Only the newest snapshot_keep snapshots of each session are kept (pruned in
 * the transaction that adds one); see store_snapshot_set_keep.
 */
#include "config.h"
#include "store_impl.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PROBE_BYTES ((size_t)256 * 1024)

/* Does out_size bytes for in_size save at least 10%? */
static int pays(size_t out_size, size_t in_size)
{
    return (double)out_size <= 0.9 * (double)in_size;
}

/*
 * Choose how to store data: on return *codec is STORE_CODEC_ZLIB with *enc (malloc'd,
 * *enc_size bytes) or STORE_CODEC_NONE with *enc NULL.  STATUS_NOMEM only.
 */
static int snapshot_encode(const void *data, size_t size, void **enc, size_t *enc_size,
                           enum store_codec *codec)
{
    *enc = NULL;
    *enc_size = size;
    *codec = STORE_CODEC_NONE;
    if (size < 64)
        return STATUS_OK;
    if (size > 2 * PROBE_BYTES) {
        const unsigned char *mid = (const unsigned char *)data + (size - PROBE_BYTES) / 2;
        uLongf plen = compressBound(PROBE_BYTES);
        unsigned char *probe = malloc(plen);
        if (!probe)
            return STATUS_NOMEM;
        int zr = compress2(probe, &plen, mid, PROBE_BYTES, Z_BEST_SPEED);
        free(probe);
        if (zr != Z_OK || !pays(plen, PROBE_BYTES))
            return STATUS_OK;
    }
    uLongf len = compressBound(size);
    unsigned char *out = malloc(len);
    if (!out)
        return STATUS_NOMEM;
    if (compress2(out, &len, data, size, Z_BEST_SPEED) != Z_OK || !pays(len, size)) {
        free(out);
        return STATUS_OK;
    }
    *enc = out;
    *enc_size = len;
    *codec = STORE_CODEC_ZLIB;
    return STATUS_OK;
}

/* Drop the session's snapshots beyond the newest s->snapshot_keep. */
static int snapshot_prune(struct store *s, int64_t sid, const char *what)
{
    if (s->snapshot_keep <= 0)
        return STATUS_OK;
    sqlite3_stmt *st = store_stmt(s, ST_SNAP_PRUNE,
                                  "DELETE FROM snapshots WHERE message_id IN ("
                                  "SELECT sn.message_id FROM snapshots sn "
                                  "JOIN messages m ON m.id = sn.message_id "
                                  "WHERE m.session_id = ?1 "
                                  "ORDER BY sn.created_ms DESC, sn.message_id DESC "
                                  "LIMIT -1 OFFSET ?2)",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int(st, 2, s->snapshot_keep);
    int rc = sqlite3_step(st);
    store_stmt_done(st);
    return rc == SQLITE_DONE ? STATUS_OK : store_fail_db(s, rc, what);
}

/* INSERT OR REPLACE the encoded snapshot row. */
static int snapshot_write(struct store *s, int64_t msg_id, const char *format,
                          const char *model_hash, enum store_codec codec, size_t raw_size,
                          uint32_t crc, const void *blob, size_t blob_size, const char *what)
{
    sqlite3_stmt *st = store_stmt(s, ST_SNAP_PUT,
                                  "INSERT OR REPLACE INTO snapshots (message_id, format, "
                                  "model_hash, codec, raw_size, crc32, created_ms, data) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, msg_id);
    store_bind_text(st, 2, format);
    store_bind_text(st, 3, model_hash ? model_hash : "");
    sqlite3_bind_int(st, 4, (int)codec);
    sqlite3_bind_int64(st, 5, (int64_t)raw_size);
    sqlite3_bind_int64(st, 6, crc);
    sqlite3_bind_int64(st, 7, store_now_ms());
    /* A NULL pointer would bind SQL NULL; an empty snapshot is a zero-length blob. */
    if (blob_size)
        sqlite3_bind_blob64(st, 8, blob, blob_size, SQLITE_STATIC);
    else
        sqlite3_bind_zeroblob(st, 8, 0);
    int rc = sqlite3_step(st);
    store_stmt_done(st); /* drops the SQLITE_STATIC pointer before the caller frees it */
    return rc == SQLITE_DONE ? STATUS_OK : store_fail_db(s, rc, what);
}

int store_snapshot_put(struct store *s, int64_t msg_id, const char *format, const char *model_hash,
                       const void *data, size_t size)
{
    const char *what = "save the snapshot";
    int rc = store_check_writable(s, what);
    if (rc != STATUS_OK)
        return rc;
    if (!format || (!data && size))
        return store_fail(s, STATUS_INVALID, "cannot %s: no format or no data", what);
    void *enc = NULL;
    size_t enc_size = 0;
    enum store_codec codec;
    if (snapshot_encode(data, size, &enc, &enc_size, &codec) != STATUS_OK)
        return store_fail(s, STATUS_NOMEM, "cannot %s: out of memory (%zu bytes)", what, size);
    int limit = sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, -1);
    if (enc_size > (size_t)limit) {
        free(enc);
        return store_fail(s, STATUS_INVALID,
                          "cannot %s: %zu bytes exceed the database's limit "
                          "of %d",
                          what, enc_size, limit);
    }
    uint32_t crc = (uint32_t)crc32_z(0, data, size);
    int64_t sid = 0;
    rc = store_begin(s, what);
    if (rc == STATUS_OK) {
        rc = store_msg_session_of(s, msg_id, &sid, what);
        if (rc == STATUS_OK)
            rc = snapshot_write(s, msg_id, format, model_hash, codec, size, crc, enc ? enc : data,
                                enc_size, what);
        if (rc == STATUS_OK)
            rc = snapshot_prune(s, sid, what);
        if (rc == STATUS_OK)
            rc = store_commit(s, what);
        else
            store_rollback(s);
    }
    free(enc);
    return rc;
}

/* Decode the stored bytes into out->data; STATUS_FORMAT with a reason if they are damaged. */
static int snapshot_decode(struct store *s, struct store_snapshot *out, const void *blob,
                           size_t blob_size, int64_t raw_size, int64_t crc)
{
    if (raw_size < 0 || (uint64_t)raw_size > SIZE_MAX / 2)
        return store_fail(s, STATUS_FORMAT,
                          "cannot read the snapshot of message %lld: it is "
                          "damaged (bad size)",
                          (long long)out->message_id);
    size_t size = (size_t)raw_size;
    unsigned char *data = malloc(size ? size : 1);
    if (!data)
        return store_fail(s, STATUS_NOMEM, "cannot read the snapshot: out of memory (%zu bytes)",
                          size);
    const char *why = NULL;
    if (out->codec == STORE_CODEC_NONE) {
        if (blob_size != size)
            why = "size mismatch";
        else if (size)
            memcpy(data, blob, size);
    } else if (out->codec == STORE_CODEC_ZLIB) {
        uLongf len = size;
        if (uncompress(data, &len, blob, blob_size) != Z_OK || len != size)
            why = "cannot decompress";
    } else {
        why = "unknown codec";
    }
    if (!why && (uint32_t)crc32_z(0, data, size) != (uint32_t)crc)
        why = "checksum mismatch";
    if (why) {
        free(data);
        return store_fail(s, STATUS_FORMAT,
                          "cannot read the snapshot of message %lld: it is "
                          "damaged (%s)",
                          (long long)out->message_id, why);
    }
    out->data = data;
    out->size = size;
    out->stored_size = blob_size;
    return STATUS_OK;
}

int store_snapshot_get(struct store *s, int64_t msg_id, struct store_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    const char *what = "read the snapshot";
    sqlite3_stmt *st = store_stmt(s, ST_SNAP_GET,
                                  "SELECT format, model_hash, codec, raw_size, crc32, created_ms, "
                                  "data FROM snapshots WHERE message_id = ?1",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, msg_id);
    int rc = sqlite3_step(st), status = STATUS_OK, oom = 0;
    if (rc == SQLITE_ROW) {
        out->message_id = msg_id;
        out->format = store_col_strdup(st, 0, &oom);
        out->model_hash = store_col_strdup(st, 1, &oom);
        out->codec = (enum store_codec)sqlite3_column_int(st, 2);
        out->created_ms = sqlite3_column_int64(st, 5);
        const void *blob = sqlite3_column_blob(st, 6);
        size_t blob_size = (size_t)sqlite3_column_bytes(st, 6);
        if (oom)
            status = store_fail(s, STATUS_NOMEM, "cannot %s: out of memory", what);
        else
            status = snapshot_decode(s, out, blob, blob_size, sqlite3_column_int64(st, 3),
                                     sqlite3_column_int64(st, 4));
    } else if (rc == SQLITE_DONE) {
        status = store_fail(s, STATUS_NOT_FOUND, "message %lld has no snapshot", (long long)msg_id);
    } else {
        status = store_fail_db(s, rc, what);
    }
    store_stmt_done(st);
    if (status != STATUS_OK)
        store_snapshot_clear(out);
    return status;
}

int store_snapshot_find(struct store *s, int64_t msg_id, int64_t *found)
{
    *found = 0;
    const char *what = "look for a snapshot";
    sqlite3_stmt *st = store_stmt(s, ST_SNAP_FIND,
                                  STORE_PATH_CTE "SELECT path.id FROM path "
                                                 "JOIN snapshots sn ON sn.message_id = path.id "
                                                 "ORDER BY path.depth LIMIT 1",
                                  what);
    if (!st)
        return s->status;
    sqlite3_bind_int64(st, 1, msg_id);
    int rc = sqlite3_step(st), status = STATUS_OK;
    if (rc == SQLITE_ROW)
        *found = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        status = store_fail(s, STATUS_NOT_FOUND, "no snapshot on the branch of message %lld",
                            (long long)msg_id);
    else
        status = store_fail_db(s, rc, what);
    store_stmt_done(st);
    return status;
}

void store_snapshot_set_keep(struct store *s, int keep)
{
    s->snapshot_keep = keep;
}

void store_snapshot_clear(struct store_snapshot *snap)
{
    if (!snap)
        return;
    free((char *)snap->format);
    free((char *)snap->model_hash);
    free(snap->data);
    memset(snap, 0, sizeof(*snap));
}
