-- 0008_vitals: traffic the data planes report (ConfigSync.Report), rolled up at 10 s, 1 min
-- and 1 h. Additive and idempotent.
--
-- vitals_requests has one row per (granularity, group, bucket start, service, route,
-- consumer, status): the nodes of a group are added together, so rows grow with entities x
-- status codes x buckets, not with the fleet. vitals_nodes keeps the per-node view at
-- (node, service, status) only, as Kong Vitals kept node stats apart from route codes.
-- Ids are text: "" means none (no route matched, anonymous) and consumer "*" the consumers
-- past a route's top N. Latency columns are fixed-bin histograms
-- (common/vitals/latency_bins.h), so a rollup is an element-wise sum.
CREATE TABLE IF NOT EXISTS vitals_requests (
  granularity  integer  NOT NULL,   -- seconds: 10, 60 or 3600
  group_name   text     NOT NULL,
  ts           bigint   NOT NULL,   -- bucket start, epoch seconds
  service      text     NOT NULL,
  route        text     NOT NULL,
  consumer     text     NOT NULL,
  status       smallint NOT NULL,
  requests     bigint   NOT NULL,
  bytes_in     bigint   NOT NULL,
  bytes_out    bigint   NOT NULL,
  lat_total    bigint[] NOT NULL,
  lat_upstream bigint[] NOT NULL,
  lat_proxy    bigint[] NOT NULL,
  max_total    bigint   NOT NULL,
  max_upstream bigint   NOT NULL,
  max_proxy    bigint   NOT NULL,
  PRIMARY KEY (granularity, group_name, ts, service, route, consumer, status)
);

CREATE TABLE IF NOT EXISTS vitals_nodes (
  granularity  integer  NOT NULL,
  group_name   text     NOT NULL,
  ts           bigint   NOT NULL,
  node         text     NOT NULL,
  service      text     NOT NULL,
  status       smallint NOT NULL,
  requests     bigint   NOT NULL,
  bytes_in     bigint   NOT NULL,
  bytes_out    bigint   NOT NULL,
  lat_total    bigint[] NOT NULL,
  lat_upstream bigint[] NOT NULL,
  lat_proxy    bigint[] NOT NULL,
  max_total    bigint   NOT NULL,
  max_upstream bigint   NOT NULL,
  max_proxy    bigint   NOT NULL,
  PRIMARY KEY (granularity, group_name, ts, node, service, status)
);

-- The last batch stored per DP process: batches at or below it are duplicates (a resend
-- after a reconnect or a control plane restart). Written in the same transaction as the
-- rows, so a batch counts exactly once.
CREATE TABLE IF NOT EXISTS vitals_senders (
  node_id     text   NOT NULL,
  instance    text   NOT NULL,
  last_seq    bigint NOT NULL,
  updated_at  bigint NOT NULL,   -- epoch seconds
  PRIMARY KEY (node_id, instance)
);

-- When the retention job last ran (one row): replicas take turns, whoever is due first.
CREATE TABLE IF NOT EXISTS vitals_jobs (
  name      text   PRIMARY KEY,
  last_run  bigint NOT NULL
);

CREATE OR REPLACE FUNCTION vitals_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
  FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$;
