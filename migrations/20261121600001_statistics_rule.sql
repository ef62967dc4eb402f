-- Aggregate booking statistics (issue 6): city staff may read them too. city_admin, auditor and the
-- platform operator already hold wildcard rules; call_center and venue staff do not get them.
INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'city_staff', '*', 'statistics', 'read');
