-- Offsite copies: where each backup is besides the backup folder, and the copies still owed.
-- Like the rest of the catalog it can be rebuilt: `schoolvault sync --verify` compares it
-- with each destination and `rescan --from` reads a destination's files.
CREATE TABLE copies (
    backup_id   TEXT NOT NULL,
    destination TEXT NOT NULL,
    state       TEXT NOT NULL,       -- done | pending | failed
    error_code  TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    since       TEXT NOT NULL,       -- when this state began
    next_try_at TEXT,                -- pending/failed: not before (the backoff)
    size        INTEGER,
    tag         TEXT,                -- done: the ETag / modification time seen after the upload
    PRIMARY KEY (backup_id, destination)
);
