-- Issue 17, API key lifecycle and per-key limits (docs/api.md, "API keys"; platform::staff::api_keys):
-- an expiry chosen at creation, a rotation that replaces the secret of the same key (same id, name
-- and scopes; the old secret stops working at once), and the key's own request budget.

-- every migration from here on waits at most this long for a lock (docs/operations.md)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- NULL = never expires. A rotation starts the same lifetime again from the rotation.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
-- When the current secret was issued by a rotation (NULL = the secret made at creation).
ALTER TABLE api_keys ADD COLUMN rotated_at timestamptz;
-- Requests per minute this key may make; NULL = the deployment's default
-- (auth.api_key_requests_per_minute). Bounds are checked by the platform (1..=60000).
ALTER TABLE api_keys ADD COLUMN requests_per_minute bigint;
