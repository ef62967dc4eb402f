-- Issue 17: the guard object `bookings` (GraphQL `city { bookings }` and booking on a resident's
-- behalf). city_admin, the auditor (read) and the platform operator hold wildcard rules already;
-- city staff and the call centre, who book on behalf in the admin UI, may do it over GraphQL too.
-- API keys get it through the scopes `bookings:read` / `bookings:write` (personal rules).
INSERT INTO authz_rules (ptype, v0, v1, v2, v3) VALUES
    ('p', 'city_staff', '*', 'bookings', '*'),
    ('p', 'call_center', '*', 'bookings', '*');
