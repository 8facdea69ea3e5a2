-- 0003_clustering_data_planes: the fleet registry (Kong's clustering_data_planes, Konnect's
-- Runtime Manager nodes). Written in batches by every CP replica for the DPs connected to
-- it (at most one statement per second per 1,000 nodes), read by the /clustering and
-- /control-planes/{id}/nodes endpoints, purged after --cluster_data_plane_purge_delay.
-- Additive and idempotent.
CREATE TABLE IF NOT EXISTS clustering_data_planes (
  id                    text PRIMARY KEY,          -- the DP's node id (UUID text)
  group_name            text NOT NULL,
  hostname              text NOT NULL DEFAULT '',
  ip                    text NOT NULL DEFAULT '',
  version               text NOT NULL DEFAULT '',
  sync_status           text NOT NULL DEFAULT 'unknown',
  config_hash           text NOT NULL DEFAULT '',
  generation            bigint NOT NULL DEFAULT 0,
  connected             boolean NOT NULL DEFAULT false,
  labels                jsonb NOT NULL DEFAULT '{}'::jsonb,
  compatibility_issues  jsonb NOT NULL DEFAULT '[]'::jsonb,
  last_error            jsonb,
  last_seen             timestamptz NOT NULL DEFAULT now(),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS clustering_data_planes_group_idx
  ON clustering_data_planes (group_name, id);
CREATE INDEX IF NOT EXISTS clustering_data_planes_last_seen_idx
  ON clustering_data_planes (last_seen);
