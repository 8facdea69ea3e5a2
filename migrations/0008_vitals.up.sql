-- 0008_vitals: traffic the data planes report (ConfigSync.Report), rolled up at 10 s, 1 min
-- and 1 h. Additive and idempotent.
--
-- The nodes of a group are added together, so rows grow with entities x status codes x
-- buckets, not with the fleet:
--   vitals_requests  per (service, route, consumer, status): the consumer view;
--   vitals_routes    per (service, route, status), consumers added: most reads, 11x fewer
--                    rows than the consumer view with the default top 10 consumers;
--   vitals_nodes     per (node, service, status), as Kong Vitals kept node stats apart.
-- Ids are text: "" means none (no route matched, anonymous) and consumer "*" the consumers
-- past a route's top N.
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
  max_total    bigint   NOT NULL,
  max_upstream bigint   NOT NULL,
  max_proxy    bigint   NOT NULL,
  -- latency histograms, one column per bin (common/vitals/latency_bins.h): t = total,
  -- u = upstream, p = proxy. Columns, not arrays: rollups and queries are plain sums.
  t0 bigint NOT NULL DEFAULT 0, t1 bigint NOT NULL DEFAULT 0, t2 bigint NOT NULL DEFAULT 0, t3 bigint NOT NULL DEFAULT 0, t4 bigint NOT NULL DEFAULT 0, t5 bigint NOT NULL DEFAULT 0, t6 bigint NOT NULL DEFAULT 0, t7 bigint NOT NULL DEFAULT 0,
  t8 bigint NOT NULL DEFAULT 0, t9 bigint NOT NULL DEFAULT 0, t10 bigint NOT NULL DEFAULT 0, t11 bigint NOT NULL DEFAULT 0, t12 bigint NOT NULL DEFAULT 0, t13 bigint NOT NULL DEFAULT 0, t14 bigint NOT NULL DEFAULT 0, t15 bigint NOT NULL DEFAULT 0,
  u0 bigint NOT NULL DEFAULT 0, u1 bigint NOT NULL DEFAULT 0, u2 bigint NOT NULL DEFAULT 0, u3 bigint NOT NULL DEFAULT 0, u4 bigint NOT NULL DEFAULT 0, u5 bigint NOT NULL DEFAULT 0, u6 bigint NOT NULL DEFAULT 0, u7 bigint NOT NULL DEFAULT 0,
  u8 bigint NOT NULL DEFAULT 0, u9 bigint NOT NULL DEFAULT 0, u10 bigint NOT NULL DEFAULT 0, u11 bigint NOT NULL DEFAULT 0, u12 bigint NOT NULL DEFAULT 0, u13 bigint NOT NULL DEFAULT 0, u14 bigint NOT NULL DEFAULT 0, u15 bigint NOT NULL DEFAULT 0,
  p0 bigint NOT NULL DEFAULT 0, p1 bigint NOT NULL DEFAULT 0, p2 bigint NOT NULL DEFAULT 0, p3 bigint NOT NULL DEFAULT 0, p4 bigint NOT NULL DEFAULT 0, p5 bigint NOT NULL DEFAULT 0, p6 bigint NOT NULL DEFAULT 0, p7 bigint NOT NULL DEFAULT 0,
  p8 bigint NOT NULL DEFAULT 0, p9 bigint NOT NULL DEFAULT 0, p10 bigint NOT NULL DEFAULT 0, p11 bigint NOT NULL DEFAULT 0, p12 bigint NOT NULL DEFAULT 0, p13 bigint NOT NULL DEFAULT 0, p14 bigint NOT NULL DEFAULT 0, p15 bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (granularity, group_name, ts, service, route, consumer, status)
);

CREATE TABLE IF NOT EXISTS vitals_routes (
  granularity  integer  NOT NULL,
  group_name   text     NOT NULL,
  ts           bigint   NOT NULL,
  service      text     NOT NULL,
  route        text     NOT NULL,
  status       smallint NOT NULL,
  requests     bigint   NOT NULL,
  bytes_in     bigint   NOT NULL,
  bytes_out    bigint   NOT NULL,
  max_total    bigint   NOT NULL,
  max_upstream bigint   NOT NULL,
  max_proxy    bigint   NOT NULL,
  -- latency histograms, one column per bin (common/vitals/latency_bins.h): t = total,
  -- u = upstream, p = proxy. Columns, not arrays: rollups and queries are plain sums.
  t0 bigint NOT NULL DEFAULT 0, t1 bigint NOT NULL DEFAULT 0, t2 bigint NOT NULL DEFAULT 0, t3 bigint NOT NULL DEFAULT 0, t4 bigint NOT NULL DEFAULT 0, t5 bigint NOT NULL DEFAULT 0, t6 bigint NOT NULL DEFAULT 0, t7 bigint NOT NULL DEFAULT 0,
  t8 bigint NOT NULL DEFAULT 0, t9 bigint NOT NULL DEFAULT 0, t10 bigint NOT NULL DEFAULT 0, t11 bigint NOT NULL DEFAULT 0, t12 bigint NOT NULL DEFAULT 0, t13 bigint NOT NULL DEFAULT 0, t14 bigint NOT NULL DEFAULT 0, t15 bigint NOT NULL DEFAULT 0,
  u0 bigint NOT NULL DEFAULT 0, u1 bigint NOT NULL DEFAULT 0, u2 bigint NOT NULL DEFAULT 0, u3 bigint NOT NULL DEFAULT 0, u4 bigint NOT NULL DEFAULT 0, u5 bigint NOT NULL DEFAULT 0, u6 bigint NOT NULL DEFAULT 0, u7 bigint NOT NULL DEFAULT 0,
  u8 bigint NOT NULL DEFAULT 0, u9 bigint NOT NULL DEFAULT 0, u10 bigint NOT NULL DEFAULT 0, u11 bigint NOT NULL DEFAULT 0, u12 bigint NOT NULL DEFAULT 0, u13 bigint NOT NULL DEFAULT 0, u14 bigint NOT NULL DEFAULT 0, u15 bigint NOT NULL DEFAULT 0,
  p0 bigint NOT NULL DEFAULT 0, p1 bigint NOT NULL DEFAULT 0, p2 bigint NOT NULL DEFAULT 0, p3 bigint NOT NULL DEFAULT 0, p4 bigint NOT NULL DEFAULT 0, p5 bigint NOT NULL DEFAULT 0, p6 bigint NOT NULL DEFAULT 0, p7 bigint NOT NULL DEFAULT 0,
  p8 bigint NOT NULL DEFAULT 0, p9 bigint NOT NULL DEFAULT 0, p10 bigint NOT NULL DEFAULT 0, p11 bigint NOT NULL DEFAULT 0, p12 bigint NOT NULL DEFAULT 0, p13 bigint NOT NULL DEFAULT 0, p14 bigint NOT NULL DEFAULT 0, p15 bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (granularity, group_name, ts, service, route, status)
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
  max_total    bigint   NOT NULL,
  max_upstream bigint   NOT NULL,
  max_proxy    bigint   NOT NULL,
  -- latency histograms, one column per bin (common/vitals/latency_bins.h): t = total,
  -- u = upstream, p = proxy. Columns, not arrays: rollups and queries are plain sums.
  t0 bigint NOT NULL DEFAULT 0, t1 bigint NOT NULL DEFAULT 0, t2 bigint NOT NULL DEFAULT 0, t3 bigint NOT NULL DEFAULT 0, t4 bigint NOT NULL DEFAULT 0, t5 bigint NOT NULL DEFAULT 0, t6 bigint NOT NULL DEFAULT 0, t7 bigint NOT NULL DEFAULT 0,
  t8 bigint NOT NULL DEFAULT 0, t9 bigint NOT NULL DEFAULT 0, t10 bigint NOT NULL DEFAULT 0, t11 bigint NOT NULL DEFAULT 0, t12 bigint NOT NULL DEFAULT 0, t13 bigint NOT NULL DEFAULT 0, t14 bigint NOT NULL DEFAULT 0, t15 bigint NOT NULL DEFAULT 0,
  u0 bigint NOT NULL DEFAULT 0, u1 bigint NOT NULL DEFAULT 0, u2 bigint NOT NULL DEFAULT 0, u3 bigint NOT NULL DEFAULT 0, u4 bigint NOT NULL DEFAULT 0, u5 bigint NOT NULL DEFAULT 0, u6 bigint NOT NULL DEFAULT 0, u7 bigint NOT NULL DEFAULT 0,
  u8 bigint NOT NULL DEFAULT 0, u9 bigint NOT NULL DEFAULT 0, u10 bigint NOT NULL DEFAULT 0, u11 bigint NOT NULL DEFAULT 0, u12 bigint NOT NULL DEFAULT 0, u13 bigint NOT NULL DEFAULT 0, u14 bigint NOT NULL DEFAULT 0, u15 bigint NOT NULL DEFAULT 0,
  p0 bigint NOT NULL DEFAULT 0, p1 bigint NOT NULL DEFAULT 0, p2 bigint NOT NULL DEFAULT 0, p3 bigint NOT NULL DEFAULT 0, p4 bigint NOT NULL DEFAULT 0, p5 bigint NOT NULL DEFAULT 0, p6 bigint NOT NULL DEFAULT 0, p7 bigint NOT NULL DEFAULT 0,
  p8 bigint NOT NULL DEFAULT 0, p9 bigint NOT NULL DEFAULT 0, p10 bigint NOT NULL DEFAULT 0, p11 bigint NOT NULL DEFAULT 0, p12 bigint NOT NULL DEFAULT 0, p13 bigint NOT NULL DEFAULT 0, p14 bigint NOT NULL DEFAULT 0, p15 bigint NOT NULL DEFAULT 0,
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
