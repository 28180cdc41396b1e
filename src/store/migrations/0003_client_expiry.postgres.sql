-- Client keys: when each expires and when an operator disabled it (Unix milliseconds).
ALTER TABLE client_keys ADD COLUMN expires_ms BIGINT NULL;
ALTER TABLE client_keys ADD COLUMN disabled_ms BIGINT NULL;
