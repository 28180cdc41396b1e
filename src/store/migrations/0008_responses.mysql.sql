-- Responses kept for previous_response_id (the OpenAI Responses API): the
-- conversation's items (input and output, JSON) and the response object,
-- owned by the client that made it, until expires_ms.
CREATE TABLE IF NOT EXISTS responses (
    id VARCHAR(128) PRIMARY KEY,
    client VARCHAR(128) NOT NULL,
    items LONGTEXT NOT NULL,
    response LONGTEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX responses_expires ON responses (expires_ms)
