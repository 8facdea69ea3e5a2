-- 0010_vitals_route_buckets: the 10 s traffic of every (service, route) of a group packed into
-- one row per bucket, status codes added together. Written in the same transaction as the
-- vitals_routes rows it sums (so exactly once too) and kept 1 h. It answers 10 s reads that
-- group or filter by service and route only (the dashboard's "1 h by route"): one row per
-- bucket instead of entities x status codes rows, summed at ingest instead of at read.
-- `data` is control_plane/vitals/vitals_store.cc's packed format (varints), uncompressed
-- (STORAGE EXTERNAL: pglz would cost more to undo at read than the bytes it saves).
-- Additive and idempotent.
CREATE TABLE IF NOT EXISTS vitals_route_buckets (
  group_name  text    NOT NULL,
  ts          bigint  NOT NULL,   -- bucket start, epoch seconds, a multiple of 10
  data        bytea   NOT NULL,
  PRIMARY KEY (group_name, ts)
);
ALTER TABLE vitals_route_buckets ALTER COLUMN data SET STORAGE EXTERNAL;
