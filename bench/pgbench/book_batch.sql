-- The batch function alone, as the runtime role (row-level security on): 20 first-dose bookings
-- per call of book_first_doses, resident ids given, as a lane sends them. Client c books residents
-- c * 12500 + 1, +2, … (keep c * 12500 + 12500 ≤ the residents; run reset.sql before). Needs a
-- database kept by `yoyaku-bench rush --keep 1`.
--   pgbench -h 127.0.0.1 -n -M prepared -c 8 -j 2 -T 4 -U yoyaku_app -D i=0 \
--           -f bench/pgbench/book_batch.sql yoyaku_bench_…
\set i :i + 1
\set base :client_id * 12500 + :i * 20
SELECT count(*) FILTER (WHERE out_outcome = 'booked') AS booked
  FROM (SELECT p.tenant_id AS t, array_agg(p.id ORDER BY p.n) AS r,
               array_agg(s.id ORDER BY p.n) AS sl,
               array_agg(gen_random_uuid()) AS bk, count(*) AS c
          FROM bench_people p
          JOIN bench_slots s ON s.n = 1 + ((p.n * 7919 + :i * 13) % 101500)
         WHERE p.n > :base AND p.n <= :base + 20
         GROUP BY p.tenant_id) q,
       LATERAL book_first_doses(q.t, array_fill(NULL::bytea, ARRAY[q.c::int]), q.r, q.sl,
              array_fill(NULL::text, ARRAY[q.c::int]),
              (SELECT array_agg('pgb-' || x) FROM unnest(q.bk) x), q.bk,
              (SELECT array_agg(x::text) FROM unnest(q.bk) x),
              (SELECT array_agg(q.t || '/booking-confirmed:' || x) FROM unnest(q.bk) x),
              (SELECT array_agg(convert_to('{"kind":"booking_confirmed"}', 'UTF8')) FROM unnest(q.bk) x));
