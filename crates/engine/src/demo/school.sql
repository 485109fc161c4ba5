-- A small school schema of the project's own, with every common PostgreSQL type and edge
-- values, for tests that must always run (no ../shared fixtures needed).
CREATE TYPE role AS ENUM ('ADMIN', 'TEACHER', 'STUDENT', 'PARENT');
CREATE SCHEMA finance;

CREATE TABLE schools (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    settings jsonb
);
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    school_id integer NOT NULL REFERENCES schools(id),
    email text UNIQUE,
    name text NOT NULL,
    role role NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    name_upper text GENERATED ALWAYS AS (upper(name)) STORED
);
CREATE TABLE students (
    id uuid PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    birth_date date,
    tags text[],
    photo bytea
);
CREATE TABLE attendance (
    student_id uuid NOT NULL REFERENCES students(id),
    day date NOT NULL,
    present boolean NOT NULL,
    note text,
    PRIMARY KEY (student_id, day)
);
CREATE TABLE finance."Fee Payments" (
    id serial PRIMARY KEY,
    student_id uuid REFERENCES students(id),
    amount numeric(12,2),
    ratio numeric,
    score double precision,
    real_score real,
    paid_at timestamp(3),
    paid_tz timestamptz,
    period interval,
    at_time time,
    small smallint,
    big bigint,
    ip inet,
    payload json,
    ids integer[],
    matrix numeric[][]
);
CREATE TABLE audit (id bigserial PRIMARY KEY, what text NOT NULL, at timestamptz DEFAULT now());

-- A trigger that writes to the audit table: it must not fire during a restore.
CREATE FUNCTION audit_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (what) VALUES ('user ' || NEW.id || ' ' || TG_OP);
    RETURN NEW;
END $$;
CREATE TRIGGER users_audit AFTER INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION audit_users();

INSERT INTO schools (name, settings) VALUES
    ('Green Valley School', '{"terms": 3, "nested": {"a": [1, 2, null]}, "unicode": "विद्यालय"}'),
    ('École Saint-Michel', NULL);
INSERT INTO users (school_id, email, name, role, active, created_at) VALUES
    (1, 'admin@gv.example', 'Asha Admin', 'ADMIN', true, '2025-04-01 08:00:00+05:30'),
    (1, 'tab@gv.example', E'Tab\tName', 'TEACHER', true, '2025-04-01 09:00:00+00'),
    (1, NULL, E'New\nLine \\ Backslash', 'STUDENT', false, '1999-12-31 23:59:59.999999+00'),
    (2, '', 'Empty Email', 'PARENT', true, 'infinity'),
    (2, 'quote@sm.example', 'O''Brien "Quoted"', 'STUDENT', true, '-infinity');
INSERT INTO students (id, user_id, birth_date, tags, photo) VALUES
    ('00000000-0000-0000-0000-000000000001', 3, '2012-02-29', ARRAY['a', NULL, 'c,d', 'e"f', ''], '\x00ff00deadbeef00'),
    ('00000000-0000-0000-0000-000000000002', 5, NULL, '{}', ''),
    ('00000000-0000-0000-0000-000000000003', 5, '0001-01-01 BC', NULL, NULL);
INSERT INTO attendance SELECT '00000000-0000-0000-0000-000000000001', d::date, (extract(doy FROM d)::int % 7) <> 0, CASE WHEN extract(doy FROM d)::int % 11 = 0 THEN 'late' END
    FROM generate_series('2025-04-01'::date, '2026-03-31'::date, '1 day') d;
INSERT INTO finance."Fee Payments" (student_id, amount, ratio, score, real_score, paid_at, paid_tz, period, at_time, small, big, ip, payload, ids, matrix) VALUES
    ('00000000-0000-0000-0000-000000000001', 1234.56, 'NaN', 'Infinity', '-Infinity', '2025-06-01 10:00:00.123', '2025-06-01 10:00:00.123456+02', '1 year 2 mons 3 days 04:05:06.789', '23:59:59.999999', -32768, 9223372036854775807, '192.168.0.1/24', '{"k": "v", "n": 1.0e10}', '{1,NULL,3}', '{{1.5,2},{NULL,4}}'),
    ('00000000-0000-0000-0000-000000000002', -0.01, '0.000000000000000000001', 'NaN', 1.17549435e-38, NULL, NULL, '-1 days', '00:00', 0, -9223372036854775808, '::1', 'null', '{}', NULL),
    (NULL, NULL, '-Infinity', 2.2250738585072014e-308, 3.4028235e38, '2000-02-29 00:00', 'epoch', '0', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
