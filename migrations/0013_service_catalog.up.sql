-- 0013_service_catalog: ServiceHub's catalog (issue 14, part 2), global to the installation:
-- catalog services span control planes. Additive and idempotent.
--
--   catalog_services       what a team owns: names, owner, labels, links, and `search`, the
--                          full-text document of the service (its own fields and its versions'
--                          spec operations), kept by the control plane in the transaction of
--                          every write that changes one of them (control_plane/store/
--                          pg_catalog.cc says which parts weigh what); `search_rank` is its
--                          part without the specs, small enough to rank every match;
--   catalog_versions       a service's versions: state, the OpenAPI document as given (text;
--                          JSON or YAML) and the terms searched for in it;
--   catalog_version_bindings  the gateway services a version runs as, per control plane;
--   catalog_dependencies   declared dependencies between catalog services.
-- Gateway services are not foreign keys: entity tables churn (POST /config replaces them
-- whole) and the catalog must not block or slow their deletes. A binding is checked when it
-- is written; a gateway service deleted later leaves a binding whose usage reads zero. A
-- deleted control plane takes its bindings with it.
CREATE TABLE IF NOT EXISTS catalog_services (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name            text NOT NULL UNIQUE,
  display_name    text,
  description     text,
  owner_team      text,
  labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
  repository_url  text,
  runbook_url     text,
  search          tsvector NOT NULL DEFAULT ''::tsvector,
  search_rank     tsvector NOT NULL DEFAULT ''::tsvector,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS catalog_services_search_idx ON catalog_services USING gin (search);
CREATE INDEX IF NOT EXISTS catalog_services_labels_idx
  ON catalog_services USING gin (labels jsonb_path_ops);
CREATE INDEX IF NOT EXISTS catalog_services_owner_idx ON catalog_services (owner_team);

CREATE TABLE IF NOT EXISTS catalog_versions (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  service_id   uuid NOT NULL REFERENCES catalog_services (id) ON DELETE CASCADE,
  version      text NOT NULL,
  state        text NOT NULL DEFAULT 'unpublished'
               CHECK (state IN ('published', 'deprecated', 'unpublished')),
  spec         text,             -- the OpenAPI document as given; NULL: none yet
  spec_format  text CHECK (spec_format IN ('json', 'yaml')),
  spec_terms   text NOT NULL DEFAULT '',  -- its operations' searchable words
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (service_id, version)   -- also the index behind the foreign key
);

CREATE TABLE IF NOT EXISTS catalog_version_bindings (
  version_id          uuid NOT NULL REFERENCES catalog_versions (id) ON DELETE CASCADE,
  control_plane_id    uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
  gateway_service_id  uuid NOT NULL,
  PRIMARY KEY (version_id, control_plane_id, gateway_service_id)
);
CREATE INDEX IF NOT EXISTS catalog_version_bindings_control_plane_idx
  ON catalog_version_bindings (control_plane_id, gateway_service_id);

CREATE TABLE IF NOT EXISTS catalog_dependencies (
  service_id     uuid NOT NULL REFERENCES catalog_services (id) ON DELETE CASCADE,
  depends_on_id  uuid NOT NULL REFERENCES catalog_services (id) ON DELETE CASCADE,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service_id, depends_on_id),
  CHECK (service_id <> depends_on_id)
);
CREATE INDEX IF NOT EXISTS catalog_dependencies_depends_on_idx
  ON catalog_dependencies (depends_on_id);
