-- 0002_entities: consumers, plugins, upstreams, targets, certificates, snis, ca_certificates
-- and the credentials (key-auth, basic-auth, jwt, hmac-auth, acls). Additive and idempotent.
--
-- As in 0001, each row keeps the entity's full Kong JSON in `entity`. Keys and references
-- are generated columns derived from it, so the JSON stays the one copy of every value while
-- PostgreSQL still enforces uniqueness and references. The control plane checks both itself
-- (within the write transaction, which holds the group's row lock) to answer Kong's error
-- bodies; these constraints are the backstop. Deletes cascade in the control plane too, so
-- every deleted child gets its change_log row; ON DELETE CASCADE only guarantees no orphan.

CREATE TABLE IF NOT EXISTS consumers (
  group_name  text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id          uuid NOT NULL,
  entity      jsonb NOT NULL,
  created_at  bigint NOT NULL,
  updated_at  bigint NOT NULL,
  username    text GENERATED ALWAYS AS (entity->>'username') STORED,
  custom_id   text GENERATED ALWAYS AS (entity->>'custom_id') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT consumers_username_unique UNIQUE (group_name, username),
  CONSTRAINT consumers_custom_id_unique UNIQUE (group_name, custom_id)
);

CREATE TABLE IF NOT EXISTS upstreams (
  group_name  text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id          uuid NOT NULL,
  entity      jsonb NOT NULL,
  created_at  bigint NOT NULL,
  updated_at  bigint NOT NULL,
  name        text GENERATED ALWAYS AS (entity->>'name') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT upstreams_name_unique UNIQUE (group_name, name)
);

CREATE TABLE IF NOT EXISTS targets (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   double precision NOT NULL,
  updated_at   double precision NOT NULL,
  upstream_id  uuid GENERATED ALWAYS AS ((entity->'upstream'->>'id')::uuid) STORED,
  target       text GENERATED ALWAYS AS (entity->>'target') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT targets_target_unique UNIQUE (group_name, upstream_id, target),
  CONSTRAINT targets_upstream_fk FOREIGN KEY (group_name, upstream_id)
    REFERENCES upstreams (group_name, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS certificates (
  group_name  text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id          uuid NOT NULL,
  entity      jsonb NOT NULL,
  created_at  bigint NOT NULL,
  updated_at  bigint NOT NULL,
  PRIMARY KEY (group_name, id)
);

CREATE TABLE IF NOT EXISTS snis (
  group_name      text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id              uuid NOT NULL,
  entity          jsonb NOT NULL,
  created_at      bigint NOT NULL,
  updated_at      bigint NOT NULL,
  name            text GENERATED ALWAYS AS (entity->>'name') STORED,
  certificate_id  uuid GENERATED ALWAYS AS ((entity->'certificate'->>'id')::uuid) STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT snis_name_unique UNIQUE (group_name, name),
  CONSTRAINT snis_certificate_fk FOREIGN KEY (group_name, certificate_id)
    REFERENCES certificates (group_name, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS ca_certificates (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  cert_digest  text GENERATED ALWAYS AS (entity->>'cert_digest') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT ca_certificates_cert_digest_unique UNIQUE (group_name, cert_digest)
);

CREATE TABLE IF NOT EXISTS plugins (
  group_name     text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id             uuid NOT NULL,
  entity         jsonb NOT NULL,
  created_at     bigint NOT NULL,
  updated_at     bigint NOT NULL,
  name           text GENERATED ALWAYS AS (entity->>'name') STORED,
  instance_name  text GENERATED ALWAYS AS (entity->>'instance_name') STORED,
  route_id       uuid GENERATED ALWAYS AS ((entity->'route'->>'id')::uuid) STORED,
  service_id     uuid GENERATED ALWAYS AS ((entity->'service'->>'id')::uuid) STORED,
  consumer_id    uuid GENERATED ALWAYS AS ((entity->'consumer'->>'id')::uuid) STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT plugins_instance_name_unique UNIQUE (group_name, instance_name),
  CONSTRAINT plugins_route_fk FOREIGN KEY (group_name, route_id)
    REFERENCES routes (group_name, id) ON DELETE CASCADE,
  CONSTRAINT plugins_service_fk FOREIGN KEY (group_name, service_id)
    REFERENCES services (group_name, id) ON DELETE CASCADE,
  CONSTRAINT plugins_consumer_fk FOREIGN KEY (group_name, consumer_id)
    REFERENCES consumers (group_name, id) ON DELETE CASCADE
);
-- One plugin of a name per (route, service, consumer) scope; NULL scopes compare equal.
CREATE UNIQUE INDEX IF NOT EXISTS plugins_scope_unique ON plugins (group_name, name,
  COALESCE(route_id, '00000000-0000-0000-0000-000000000000'::uuid),
  COALESCE(service_id, '00000000-0000-0000-0000-000000000000'::uuid),
  COALESCE(consumer_id, '00000000-0000-0000-0000-000000000000'::uuid));

-- Credentials: each belongs to a consumer and goes when it goes.
CREATE TABLE IF NOT EXISTS keyauth_credentials (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  consumer_id  uuid GENERATED ALWAYS AS ((entity->'consumer'->>'id')::uuid) STORED,
  key          text GENERATED ALWAYS AS (entity->>'key') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT keyauth_credentials_key_unique UNIQUE (group_name, key),
  CONSTRAINT keyauth_credentials_consumer_fk FOREIGN KEY (group_name, consumer_id)
    REFERENCES consumers (group_name, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS basicauth_credentials (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  consumer_id  uuid GENERATED ALWAYS AS ((entity->'consumer'->>'id')::uuid) STORED,
  username     text GENERATED ALWAYS AS (entity->>'username') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT basicauth_credentials_username_unique UNIQUE (group_name, username),
  CONSTRAINT basicauth_credentials_consumer_fk FOREIGN KEY (group_name, consumer_id)
    REFERENCES consumers (group_name, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS jwt_secrets (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  consumer_id  uuid GENERATED ALWAYS AS ((entity->'consumer'->>'id')::uuid) STORED,
  key          text GENERATED ALWAYS AS (entity->>'key') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT jwt_secrets_key_unique UNIQUE (group_name, key),
  CONSTRAINT jwt_secrets_consumer_fk FOREIGN KEY (group_name, consumer_id)
    REFERENCES consumers (group_name, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS hmacauth_credentials (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  consumer_id  uuid GENERATED ALWAYS AS ((entity->'consumer'->>'id')::uuid) STORED,
  username     text GENERATED ALWAYS AS (entity->>'username') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT hmacauth_credentials_username_unique UNIQUE (group_name, username),
  CONSTRAINT hmacauth_credentials_consumer_fk FOREIGN KEY (group_name, consumer_id)
    REFERENCES consumers (group_name, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS acls (
  group_name   text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id           uuid NOT NULL,
  entity       jsonb NOT NULL,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  consumer_id  uuid GENERATED ALWAYS AS ((entity->'consumer'->>'id')::uuid) STORED,
  acl_group    text GENERATED ALWAYS AS (entity->>'group') STORED,
  PRIMARY KEY (group_name, id),
  CONSTRAINT acls_group_unique UNIQUE (group_name, consumer_id, acl_group),
  CONSTRAINT acls_consumer_fk FOREIGN KEY (group_name, consumer_id)
    REFERENCES consumers (group_name, id) ON DELETE CASCADE
);

-- Tag filters (?tags=a,b) test containment on every entity table.
CREATE INDEX IF NOT EXISTS services_tags_idx ON services USING gin ((entity->'tags'));
CREATE INDEX IF NOT EXISTS routes_tags_idx ON routes USING gin ((entity->'tags'));
CREATE INDEX IF NOT EXISTS consumers_tags_idx ON consumers USING gin ((entity->'tags'));
CREATE INDEX IF NOT EXISTS plugins_tags_idx ON plugins USING gin ((entity->'tags'));
CREATE INDEX IF NOT EXISTS upstreams_tags_idx ON upstreams USING gin ((entity->'tags'));
