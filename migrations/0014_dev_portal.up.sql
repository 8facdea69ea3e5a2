-- 0014_dev_portal: the Dev Portal (issue 14, part 3): developers who sign up on the portal
-- listener, their sessions, their applications and the applications' registrations for
-- published catalog versions, plus the portal's settings. Global to the installation, like
-- the catalog, and not config: what an approved registration provisions (a consumer, its
-- key-auth credential, an acl group) goes through the config write path into the version's
-- control planes (control_plane/portal/provisioning.h). Additive and idempotent.
--
--   portal_settings       one row: automatic approval of developers and of registrations;
--   portal_developers     email (lower-cased, unique), display name, scrypt password hash
--                         ("scrypt$N$r$p$salt$hash", base64), status;
--   portal_sessions       server-side sessions: the SHA-256 of the cookie's token (the token
--                         itself is never stored), the session's CSRF token, expiry;
--   portal_applications   a developer's applications, each with the key-auth key it is
--                         issued in every control plane it is approved in;
--   portal_registrations  an application's request to use a catalog version, and its status.
CREATE TABLE IF NOT EXISTS portal_settings (
  id                         boolean PRIMARY KEY DEFAULT true CHECK (id),
  auto_approve_developers    boolean NOT NULL DEFAULT false,
  auto_approve_registrations boolean NOT NULL DEFAULT false,
  updated_at                 timestamptz NOT NULL DEFAULT now()
);
INSERT INTO portal_settings (id) VALUES (true) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS portal_developers (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email          text NOT NULL UNIQUE,
  name           text NOT NULL DEFAULT '',
  password_hash  text NOT NULL,
  status         text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS portal_developers_status_idx ON portal_developers (status);

CREATE TABLE IF NOT EXISTS portal_sessions (
  token_hash    text PRIMARY KEY,
  developer_id  uuid NOT NULL REFERENCES portal_developers (id) ON DELETE CASCADE,
  csrf_token    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_sessions_developer_idx ON portal_sessions (developer_id);
CREATE INDEX IF NOT EXISTS portal_sessions_expires_idx ON portal_sessions (expires_at);

CREATE TABLE IF NOT EXISTS portal_applications (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  developer_id  uuid NOT NULL REFERENCES portal_developers (id) ON DELETE CASCADE,
  name          text NOT NULL,
  description   text NOT NULL DEFAULT '',
  api_key       text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (developer_id, name)
);

CREATE TABLE IF NOT EXISTS portal_registrations (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  application_id  uuid NOT NULL REFERENCES portal_applications (id) ON DELETE CASCADE,
  version_id      uuid NOT NULL REFERENCES catalog_versions (id) ON DELETE CASCADE,
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (application_id, version_id)
);
CREATE INDEX IF NOT EXISTS portal_registrations_version_idx ON portal_registrations (version_id);
CREATE INDEX IF NOT EXISTS portal_registrations_status_idx ON portal_registrations (status);
