-- 0006_admins: Admin API tokens (Kong-Admin-Token header), managed with
-- `portico-cp admins create|list|revoke`. Only a salted SHA-256 of each token is stored; the
-- token itself is printed once at creation. `key_id` is the token's public part, so a request
-- finds its row with one index lookup. Additive and idempotent.
CREATE TABLE IF NOT EXISTS admins (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL,
  role        text NOT NULL CHECK (role IN ('read-only', 'admin')),
  key_id      text NOT NULL UNIQUE,
  salt        text NOT NULL,
  token_hash  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
-- One active token per admin name; revoked ones stay for audit.
CREATE UNIQUE INDEX IF NOT EXISTS admins_active_name_unique ON admins (name)
  WHERE revoked_at IS NULL;
