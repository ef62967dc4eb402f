-- Back to the seeded state between runs of book_first_dose.sql (as a superuser).
TRUNCATE bookings, idempotency_keys, notification_jobs CASCADE;
DELETE FROM apalis.jobs WHERE job_type = 'notify';
UPDATE slots SET booked = 0, booked_dose2 = 0 WHERE booked <> 0;
VACUUM ANALYZE;
CHECKPOINT;
