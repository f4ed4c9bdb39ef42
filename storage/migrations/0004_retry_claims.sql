-- Retry jobs are claimed with a lease, so two schedulers never run one job and a job whose
-- scheduler died is picked up again; an attempt that was sent but not answered leaves
-- outcome_unknown set, so the next attempt first asks the venue what happened.
ALTER TABLE trade_retry_queue ADD COLUMN claimed_by VARCHAR(64);
ALTER TABLE trade_retry_queue ADD COLUMN claimed_at TIMESTAMPTZ;
ALTER TABLE trade_retry_queue ADD COLUMN outcome_unknown BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE trade_retry_queue ADD COLUMN pending_order_ref TEXT;
ALTER TABLE trade_retry_queue ADD COLUMN is_remainder BOOLEAN NOT NULL DEFAULT false;
