-- Volume for the demo school database: 1,200 students with a year of attendance and fees, so
-- a backup and a restore of the demo show real progress (about 300,000 rows, 30 MB).
INSERT INTO users (school_id, email, name, role, active, created_at)
SELECT 1 + (g % 2), 'student' || g || '@demo.example', 'Student ' || g, 'STUDENT', g % 17 <> 0,
       timestamptz '2024-04-01' + g * interval '37 minutes'
FROM generate_series(1, 1200) g;
INSERT INTO students (id, user_id, birth_date, tags)
SELECT md5('student' || u.id)::uuid, u.id, date '2010-01-01' + (u.id % 1800)::int, ARRAY['class ' || (u.id % 12 + 1)]
FROM users u WHERE u.email LIKE 'student%@demo.example';
INSERT INTO attendance (student_id, day, present, note)
SELECT s.id, d::date, (hashtext(s.id::text || d::text) % 13) <> 0,
       CASE WHEN hashtext(s.id::text || d::text) % 29 = 0 THEN 'late bus' END
FROM students s
CROSS JOIN generate_series(date '2025-04-01', date '2026-03-31', interval '1 day') d
WHERE s.tags[1] LIKE 'class%' AND extract(isodow FROM d) < 6;
INSERT INTO finance."Fee Payments" (student_id, amount, paid_at, paid_tz, payload)
SELECT s.id, 1500 + (hashtext(s.id::text || m) % 500), timestamp '2025-04-05' + (m || ' months')::interval,
       timestamptz '2025-04-05 10:00+00' + (m || ' months')::interval, json_build_object('term', m)
FROM students s CROSS JOIN generate_series(0, 11) m WHERE s.tags[1] LIKE 'class%';
ANALYZE;
