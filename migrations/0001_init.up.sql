-- 0001_init: groups, services, routes, the change log. Additive and idempotent (rule 14):
-- safe to run again, and old and new control planes can share the result.

-- A config group (Konnect "control plane"); `default` backs the Kong-style API root.
-- `generation` is bumped by every committed write to the group, in the write's own
-- transaction. A per-group row counter (rather than one global sequence) serializes a
-- group's writers on its row, so generation order is commit order, which deltas rely on.
CREATE TABLE IF NOT EXISTS groups (
  name        text PRIMARY KEY,
  id          uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  generation  bigint NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO groups (name) VALUES ('default') ON CONFLICT (name) DO NOTHING;

-- Entities keep their full Kong JSON in `entity`; the columns beside it exist for keys,
-- constraints and lookups.
CREATE TABLE IF NOT EXISTS services (
  group_name  text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id          uuid NOT NULL,
  name        text,
  entity      jsonb NOT NULL,
  created_at  bigint NOT NULL,
  updated_at  bigint NOT NULL,
  PRIMARY KEY (group_name, id),
  CONSTRAINT services_name_unique UNIQUE (group_name, name)
);

CREATE TABLE IF NOT EXISTS routes (
  group_name  text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
  id          uuid NOT NULL,
  name        text,
  service_id  uuid,
  entity      jsonb NOT NULL,
  created_at  bigint NOT NULL,
  updated_at  bigint NOT NULL,
  PRIMARY KEY (group_name, id),
  CONSTRAINT routes_name_unique UNIQUE (group_name, name),
  -- MATCH SIMPLE: a route without a service (service_id NULL) is allowed, as in Kong.
  CONSTRAINT routes_service_fk FOREIGN KEY (group_name, service_id)
    REFERENCES services (group_name, id) ON DELETE RESTRICT
);
CREATE INDEX IF NOT EXISTS routes_service_idx ON routes (group_name, service_id);

-- One row per entity change, tagged with the generation it produced: the basis for deltas
-- and audit. Pruned by retention, never needed for correctness of a full snapshot.
CREATE TABLE IF NOT EXISTS change_log (
  seq          bigserial PRIMARY KEY,
  group_name   text NOT NULL,
  generation   bigint NOT NULL,
  entity_type  text NOT NULL,
  entity_id    uuid NOT NULL,
  op           text NOT NULL CHECK (op IN ('upsert', 'delete')),
  changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS change_log_group_generation_idx ON change_log (group_name, generation);

-- What ran: one row per migration step. The migrator creates the same table before the
-- first step runs, so this statement is a no-op there and documents the schema here.
CREATE TABLE IF NOT EXISTS schema_migrations (
  name               text PRIMARY KEY,
  up_applied_at      timestamptz,
  finish_applied_at  timestamptz
);
