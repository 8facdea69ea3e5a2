-- 0009_provisioning: the cluster CA the control planes create and share, and the data-plane
-- credentials they issue (Konnect's "new data plane node"). Additive and idempotent.

-- The CA that signs DP and CP certificates when portico-cp runs --cluster_mtls=pki with a
-- --keyring and no --cluster_ca: created once by the first CP (under an advisory lock), then
-- shared by every replica. The key is sealed with AES-256-GCM under the keyring's key
-- (control_plane/provisioning/keyring.h): a database dump alone does not reveal it.
CREATE TABLE IF NOT EXISTS cluster_ca (
  name        text PRIMARY KEY,
  cert_pem    text NOT NULL,
  key_sealed  text NOT NULL,
  created_at  bigint NOT NULL
);

-- Issued DP certificates and join tokens. Certificates are identified by the SHA-256 of
-- their DER, tokens by the SHA-256 of the token (the token itself is shown once and never
-- stored). A revoked or expired credential is refused at connect, and streams using it are
-- dropped.
CREATE TABLE IF NOT EXISTS dp_credentials (
  id           uuid PRIMARY KEY,
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('certificate', 'token')),
  name         text NOT NULL DEFAULT '',
  fingerprint  text NOT NULL UNIQUE,
  serial       text NOT NULL DEFAULT '',
  expires_at   bigint NOT NULL,
  created_at   bigint NOT NULL,
  revoked_at   bigint,
  used_by      text            -- token: the node that joined with it first (one node per token)
);
CREATE INDEX IF NOT EXISTS dp_credentials_group_idx ON dp_credentials (group_name, created_at);
