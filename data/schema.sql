-- schema.sql: the kfchat session store, latest version (PRAGMA user_version below).
--
-- A new database is made by running this file in one transaction.  An older database is
-- brought here by the migration steps in data/store.c, never by this file;
-- tests/test_store_files.c checks that both roads end in the same schema.  After editing this
-- file run scripts/gen_store_schema.sh (data/store_schema.h embeds it), add a migration step
-- and bump STORE_SCHEMA_VERSION in data/store.h.
--
-- Times are milliseconds since the Unix epoch (UTC).  Ids are plain INTEGER PRIMARY KEYs: a
-- child message is always inserted after its parent, so ids grow down every branch and the
-- newest message of a session is always a leaf.

PRAGMA application_id = 1801872232;  -- 'kfch', so that another program's database is refused
PRAGMA user_version = 2;

-- A conversation.  name is optional and unique (kfchat --session NAME); model_* say what the
-- session was last run with, so that --resume can reload it; settings is JSON text chosen by
-- the application.  forked_from is the message (in another session) this one was copied from.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    name        TEXT UNIQUE CHECK (name IS NULL OR length(name) > 0),
    model_path  TEXT NOT NULL DEFAULT '',
    model_hash  TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL DEFAULT '{}',
    forked_from INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE INDEX sessions_updated ON sessions(updated_ms);
CREATE INDEX sessions_forked_from ON sessions(forked_from);

-- One turn.  The messages of a session form a tree through parent_id (NULL for a root):
-- regenerating or editing adds a sibling.  The composite foreign key keeps a parent in the
-- same session, and deleting a message deletes its subtree.  The generation columns record
-- how an assistant reply was made (NULL or 0 when not applicable): model fingerprint, chat
-- template, sampler chain as JSON, seed (a uint64 stored bit for bit), KV policy and budget.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    parent_id   INTEGER,
    role        TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    text        TEXT NOT NULL,
    n_tokens    INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    model_hash  TEXT,
    template    TEXT,
    sampler     TEXT,
    seed        INTEGER NOT NULL DEFAULT 0,
    kv_policy   TEXT,
    kv_budget   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, id),
    FOREIGN KEY (session_id, parent_id) REFERENCES messages(session_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_parent ON messages(session_id, parent_id);

-- Engine state after a message, for exact resume: an opaque blob in the caller's format,
-- tied to a model fingerprint.  codec 0 = stored as is, 1 = zlib; raw_size and crc32 (of the
-- raw bytes) let a damaged blob be detected instead of loaded.  Kept in its own table so that
-- scanning messages never reads blobs, and pruned to the newest few per session.
CREATE TABLE snapshots (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    format      TEXT NOT NULL,
    model_hash  TEXT NOT NULL,
    codec       INTEGER NOT NULL CHECK (codec IN (0, 1)),
    raw_size    INTEGER NOT NULL,
    crc32       INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    data        BLOB NOT NULL
);

-- Version 2: full-text search over message text.  External content: the index stores only
-- tokens and reads text back from messages; the triggers keep it in step.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content = 'messages', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
