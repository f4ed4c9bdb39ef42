-- Live Swift flags (issue 12 point 3): `quantumvault flags set NAME VALUE` stores a flag's value
-- in runtime_flags under the setting's name (e.g. 'SWIFT_ENABLED' -> false) and NOTIFYs
-- 'runtime_flags_changed'; the daemon's flags actor applies it at once, without a restart. A flag
-- without a row has the value the environment gave at start. `updated_by` is who set it last.
ALTER TABLE runtime_flags ADD COLUMN updated_by TEXT;

-- Every change of a live flag, who made it and when; never updated or deleted.
-- new_value NULL: the flag was reset to the environment's value.
CREATE TABLE runtime_flag_changes (
  id BIGSERIAL PRIMARY KEY,
  key VARCHAR(64) NOT NULL,
  old_value JSONB,
  new_value JSONB,
  changed_by TEXT NOT NULL,
  reason TEXT,
  changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_runtime_flag_changes_key ON runtime_flag_changes(key, changed_at);
