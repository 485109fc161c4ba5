-- The catalog: an index of backup files and the history of runs. It can be rebuilt from the
-- files (`schoolvault rescan`); the files are the truth.
CREATE TABLE backups (
    id              TEXT PRIMARY KEY,
    path            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    engine          TEXT NOT NULL,
    server_version  TEXT NOT NULL,
    database        TEXT NOT NULL,
    tables          INTEGER NOT NULL,
    rows            INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    verified_at     TEXT,
    verify_ok       INTEGER,
    verify_message  TEXT
);
CREATE INDEX backups_created_at ON backups (created_at);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    operation   TEXT NOT NULL,
    kind        TEXT,
    outcome     TEXT NOT NULL,
    error_code  TEXT,
    message     TEXT,
    backup_id   TEXT
);
