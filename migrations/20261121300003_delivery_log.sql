-- The outbox becomes the delivery log: a job is claimed ('sending') and committed before the
-- provider is called, so a worker that dies mid-send never sends the message a second time (it is
-- marked 'dead' with the reason once its lease runs out); 'delivered' / 'failed' come from the
-- provider's status callbacks; 'skipped' says why nothing was sent (cancelled booking, no address).
ALTER TABLE notification_jobs DROP CONSTRAINT notification_jobs_status_check;
ALTER TABLE notification_jobs ADD CONSTRAINT notification_jobs_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'skipped', 'dead'));
ALTER TABLE notification_jobs
    ADD COLUMN claimed_at  timestamptz,
    ADD COLUMN channel     text,          -- sms / email / webhook / log, as actually used
    ADD COLUMN recipient   text,          -- masked: 090****5678, t***@example.jp
    ADD COLUMN units       int;           -- billed units (SMS segments, 1 per e-mail)
CREATE INDEX notification_jobs_by_status ON notification_jobs (tenant_id, status, created_at);
