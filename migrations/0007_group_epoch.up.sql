-- 0007_group_epoch: a group's config history gets an identity. Generations are comparable
-- only within one epoch: a data plane whose epoch differs from the group's takes the full
-- snapshot whatever the generations say. A new database (or group) starts a new epoch; a
-- control plane starts one when a data plane runs a generation of this epoch that the
-- database has not reached (it was restored from a backup). Additive and idempotent.
ALTER TABLE groups ADD COLUMN IF NOT EXISTS epoch uuid NOT NULL DEFAULT gen_random_uuid();
