-- 0005_control_planes: groups become Konnect-style "control planes" with a description,
-- labels and an update time. Additive and idempotent. A group's name stays its key in every
-- entity table (and in each DP's Hello.group), so names are immutable once created.
ALTER TABLE groups ADD COLUMN IF NOT EXISTS description text;
ALTER TABLE groups ADD COLUMN IF NOT EXISTS labels jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE groups ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
