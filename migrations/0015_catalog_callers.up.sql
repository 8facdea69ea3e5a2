-- 0015_catalog_callers: the gateway consumers a catalog service calls other services as
-- (issue 14, observed dependencies). Vitals count requests per consumer; a consumer tied to
-- catalog service A that calls a gateway service bound to a version of catalog service B is
-- A depending on B, seen in traffic rather than declared (control_plane/store/pg_catalog.cc,
-- observed dependencies). A consumer identifies one caller, so (control plane, consumer) is
-- the key. As with version bindings, the consumer is not a foreign key: it is checked when
-- written, and one deleted later leaves a caller that no traffic matches. Additive and
-- idempotent.
CREATE TABLE IF NOT EXISTS catalog_service_callers (
  service_id        uuid NOT NULL REFERENCES catalog_services (id) ON DELETE CASCADE,
  control_plane_id  uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
  consumer_id       uuid NOT NULL,
  PRIMARY KEY (control_plane_id, consumer_id)
);
CREATE INDEX IF NOT EXISTS catalog_service_callers_service_idx
  ON catalog_service_callers (service_id);
