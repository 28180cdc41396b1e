-- Admin sessions in the store, so any replica serves a signed-in operator
-- and a restart keeps them. Only the SHA-256 of the cookie is kept, and
-- key_tag ties a session to the admin key it was opened with (a changed key ends it).
CREATE TABLE IF NOT EXISTS admin_sessions (
    token_hash VARCHAR(64) PRIMARY KEY,
    key_tag VARCHAR(64) NOT NULL,
    csrf VARCHAR(64) NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_ms)
