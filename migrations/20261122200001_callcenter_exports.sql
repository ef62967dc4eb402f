-- Issue 6: the call centre's resident search, export jobs, and the rules for both.
--
-- 1. Kana search. A caller says their name; the operator types it however it comes out: hiragana,
--    katakana, half-width katakana (ﾔﾏﾀﾞ), with or without a space. `yoyaku_kana_fold` folds all of
--    those to one form (NFKC — half-width katakana and full-width ASCII become their usual forms —,
--    hiragana to katakana, no white space). Its Rust twin is `platform::callcenter::kana_fold`, used
--    on the operator's input; tests/e2e/callcenter.rs checks that the two agree.
--    The folded name is a stored generated column, so every writer (import, demo, SQL) fills it,
--    and a trigram index (pg_trgm, with btree_gin so tenant_id can lead the index) keeps partial
--    ("contains") search fast. Both extensions are trusted: a database owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE FUNCTION yoyaku_kana_fold(s text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN translate(
    regexp_replace(normalize(s, NFKC), '\s', '', 'g'),
    'ぁあぃいぅうぇえぉおかがきぎくぐけげこごさざしじすずせぜそぞただちぢっつづてでとどなにぬねのはばぱひびぴふぶぷへべぺほぼぽまみむめもゃやゅゆょよらりるれろゎわゐゑをんゔゕゖゝゞ',
    'ァアィイゥウェエォオカガキギクグケゲコゴサザシジスズセゼソゾタダチヂッツヅテデトドナニヌネノハバパヒビピフブプヘベペホボポマミムメモャヤュユョヨラリルレロヮワヰヱヲンヴヵヶヽヾ'
);

ALTER TABLE residents
    ADD COLUMN kana_search text GENERATED ALWAYS AS (yoyaku_kana_fold(kana_name)) STORED;
CREATE INDEX residents_kana_search ON residents USING gin (tenant_id, kana_search gin_trgm_ops);
CREATE INDEX residents_birth_date ON residents (tenant_id, birth_date);

-- 2. Export jobs (docs/exports.md). A staff member queues a job; a worker claims it with
--    FOR UPDATE SKIP LOCKED, streams the rows into a file, stores the file in export_chunks and
--    marks it done; the worker's tick expires done jobs after exports.ttl_hours and deletes their
--    chunks. rows_done is updated as batches are written (the progress bar).
CREATE TABLE export_jobs (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    kind          text NOT NULL,
    format        text NOT NULL CHECK (format IN ('xlsx', 'csv_utf8', 'csv_sjis')),
    -- what the kind needs (venue and day for the booked list), as typed JSON
    params        jsonb NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed', 'expired')),
    rows_total    bigint,
    rows_done     bigint NOT NULL DEFAULT 0,
    -- the most rows the worker held in memory at once (bounded by design: a few batches)
    max_buffered_rows  int,
    attempts      int NOT NULL DEFAULT 0,
    error         text,
    file_name     text,
    byte_size     bigint,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    -- a running job whose worker vanished is re-queued after this
    lease_until   timestamptz,
    finished_at   timestamptz,
    expires_at    timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX export_jobs_queued ON export_jobs (tenant_id, created_at) WHERE state = 'queued';
CREATE INDEX export_jobs_recent ON export_jobs (tenant_id, created_at DESC);

-- The file, in chunks of at most 1 MiB (bytea values stay small; a download streams chunk by chunk).
CREATE TABLE export_chunks (
    tenant_id  uuid NOT NULL,
    job_id     uuid NOT NULL,
    seq        int NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (tenant_id, job_id, seq),
    FOREIGN KEY (tenant_id, job_id) REFERENCES export_jobs (tenant_id, id) ON DELETE CASCADE
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['export_jobs', 'export_chunks'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END $$;

-- 3. Rules. city_admin, the auditor (read) and the platform operator hold wildcard rules already.
--  * callcenter: resident search, booking on behalf — the call centre and city staff;
--  * exports: read = list and download, write = create — city staff (never the call centre);
--  * booking_override: staff may pass a deadline / cut-off — nobody but city_admin (wildcard).
INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'call_center', '*', 'callcenter', '*'),
    ('p', 'city_staff', '*', 'callcenter', '*'),
    ('p', 'city_staff', '*', 'exports', '*');
