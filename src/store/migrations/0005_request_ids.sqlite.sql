-- The request id (x-request-id) on every request row and on every failed
-- attempt, so a request can be traced to its attempts, and each attempt's time.
-- Request rows get no index on it (one per request would cost the writer):
-- gemgate's own ids begin with their time, which the at_ms index finds.
ALTER TABLE request_log ADD COLUMN request_id VARCHAR(64) NULL;
ALTER TABLE error_log ADD COLUMN request_id VARCHAR(64) NULL;
ALTER TABLE error_log ADD COLUMN latency_ms BIGINT NULL;
CREATE INDEX error_log_request_id ON error_log (request_id)
