-- The booking function alone, as the runtime role (row-level security on), one resident each:
-- client c books for residents offset + c * 1000 + 1, +2, … (residents below `offset` may already
-- hold a booking from the rush phase). Needs a database kept by `yoyaku-bench rush --keep 1`.
--   pgbench -h 127.0.0.1 -n -M prepared -c 64 -j 2 -T 15 -U yoyaku_app -D offset=50000 -D i=0 \
--           -f bench/pgbench/book_first_dose.sql yoyaku_bench_…
\set i :i + 1
\set person :offset + :client_id * 1000 + :i
\set slot random(1, 101500)
SELECT p.tenant_id AS tenant, p.id AS resident, s.id AS slot_id, gen_random_uuid() AS booking
  FROM bench_people p, bench_slots s WHERE p.n = :person AND s.n = :slot \gset
-- the confirmation's task as the server sends it (id: any unique text; the server uses ULIDs)
SELECT out_outcome FROM book_first_dose(:tenant::uuid, NULL, :resident::uuid, :slot_id::uuid, NULL,
       'pgbench-' || :person, :booking::uuid, :booking::uuid, gen_random_uuid()::text,
       :tenant || '/booking-confirmed:' || :booking,
       convert_to(json_build_object('tenant', :tenant::uuid, 'key', 'booking-confirmed:' || :booking,
                                    'kind', 'booking_confirmed', 'booking_id', :booking::uuid)::text, 'UTF8'));
