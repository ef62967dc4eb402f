-- The tenant registry. Not tenant-owned (it *is* the list of tenants), so no row-level security here;
-- every table that belongs to a tenant carries tenant_id and is isolated by RLS (see the next migration).
CREATE TABLE tenants (
    id                    uuid PRIMARY KEY,
    slug                  text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{0,38}[a-z0-9]$'),
    name                  text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    -- 全国地方公共団体コード with its check digit (validated in the tenants crate)
    local_government_code text NOT NULL UNIQUE CHECK (local_government_code ~ '^[0-9]{6}$'),
    status                text NOT NULL DEFAULT 'onboarding'
                          CHECK (status IN ('onboarding', 'active', 'suspended')),
    time_zone             text NOT NULL DEFAULT 'Asia/Tokyo',
    default_locale        text NOT NULL DEFAULT 'ja',
    locales               text[] NOT NULL DEFAULT ARRAY['ja', 'en'],
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (default_locale = ANY (locales))
);
