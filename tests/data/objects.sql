-- One of each kind of object the schema capture must reproduce (issue 3), with data.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA "Reporting";
COMMENT ON SCHEMA "Reporting" IS 'reports for the head office';

CREATE TYPE grade AS ENUM ('A', 'B', 'C', 'F');
CREATE DOMAIN positive_int AS integer CONSTRAINT positive_int_check CHECK (VALUE > 0);
CREATE TYPE address AS (street text, city text, pin varchar(6));
CREATE SEQUENCE receipt_no START WITH 1000 INCREMENT BY 5 CACHE 1;

CREATE TABLE "Houses" (
    id serial PRIMARY KEY,
    "Name" text NOT NULL COLLATE "C",
    captain_id integer,
    motto text DEFAULT 'Onward',
    CONSTRAINT houses_name_key UNIQUE ("Name")
);
CREATE TABLE pupils (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    house_id integer NOT NULL,
    name text NOT NULL,
    email text,
    home address,
    best grade,
    age positive_int,
    name_lower text GENERATED ALWAYS AS (lower(name)) STORED,
    token text DEFAULT encode(gen_random_bytes(4), 'hex'),
    CONSTRAINT pupils_age_check CHECK (age < 30)
);
-- A foreign-key cycle with deferrable constraints: a house's captain is a pupil of it.
ALTER TABLE pupils ADD CONSTRAINT pupils_house_fk FOREIGN KEY (house_id) REFERENCES "Houses"(id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "Houses" ADD CONSTRAINT houses_captain_fk FOREIGN KEY (captain_id) REFERENCES pupils(id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX pupils_lower_email ON pupils (lower(email));
CREATE INDEX pupils_active ON pupils (house_id) WHERE email IS NOT NULL;
COMMENT ON TABLE pupils IS 'every pupil';
COMMENT ON COLUMN pupils.best IS 'best grade so far';

CREATE TABLE marks (
    pupil_id integer NOT NULL REFERENCES pupils(id),
    taken_on date NOT NULL,
    score numeric(5,2) NOT NULL,
    receipt integer DEFAULT nextval('receipt_no'),
    PRIMARY KEY (pupil_id, taken_on)
) PARTITION BY RANGE (taken_on);
CREATE TABLE marks_2025 PARTITION OF marks FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE marks_2026 PARTITION OF marks FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX marks_score ON marks (score);

CREATE UNLOGGED TABLE scratch_notes (id bigserial PRIMARY KEY, note text);

CREATE TABLE audit (id bigserial PRIMARY KEY, what text NOT NULL, at timestamptz DEFAULT now());
CREATE FUNCTION audit_pupils() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (what) VALUES ('pupil ' || NEW.id || ' ' || TG_OP);
    RETURN NEW;
END $$;
CREATE TRIGGER pupils_audit AFTER INSERT OR UPDATE ON pupils FOR EACH ROW EXECUTE FUNCTION audit_pupils();
CREATE FUNCTION "Reporting".house_size(h integer) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM public.pupils WHERE house_id = h $$;
CREATE PROCEDURE bump_ages(delta integer) LANGUAGE sql AS $$ UPDATE pupils SET age = age + delta $$;

CREATE VIEW "Reporting"."House Roster" AS
    SELECT h."Name" AS house, p.name AS pupil, p.best
    FROM public."Houses" h JOIN public.pupils p ON p.house_id = h.id;
CREATE MATERIALIZED VIEW "Reporting".house_counts AS
    SELECT h.id, h."Name", "Reporting".house_size(h.id) AS pupils FROM public."Houses" h;
CREATE INDEX house_counts_id ON "Reporting".house_counts (id);

-- Routines the capture must order after what they use: a table's row type in the signature,
-- a view's row type, SQL-standard bodies (parsed at creation).
CREATE FUNCTION older_pupils(min_age integer) RETURNS SETOF pupils LANGUAGE sql STABLE
    AS $$ SELECT * FROM pupils WHERE age >= min_age $$;
-- SQL-standard bodies (PostgreSQL 14 and later): one reads a table, one calls it, one a sequence.
DO $$ BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'CREATE FUNCTION pupil_total() RETURNS bigint LANGUAGE sql STABLE
                 BEGIN ATOMIC SELECT count(*) FROM pupils; END';
        EXECUTE 'CREATE FUNCTION pupil_total_twice() RETURNS bigint LANGUAGE sql STABLE
                 BEGIN ATOMIC SELECT 2 * pupil_total(); END';
        EXECUTE 'CREATE FUNCTION next_receipt() RETURNS bigint LANGUAGE sql
                 BEGIN ATOMIC SELECT nextval(''receipt_no''); END';
    END IF;
END $$;
CREATE FUNCTION "Reporting".roster_line(r "Reporting"."House Roster") RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT r.house || ': ' || r.pupil $$;

BEGIN;
INSERT INTO "Houses" ("Name", captain_id) VALUES ('Tagore', 1), ('Raman', 3);
INSERT INTO pupils (house_id, name, email, home, best, age) VALUES
    (1, 'Asha', 'asha@x.in', ROW('MG Road', 'Pune', '411001'), 'A', 12),
    (1, 'Bilal', NULL, NULL, 'B', 13),
    (2, 'Chitra', 'chitra@x.in', ROW('Anna Salai', 'Chennai', '600002'), 'A', 11);
COMMIT;
INSERT INTO marks (pupil_id, taken_on, score) VALUES (1, '2025-07-01', 91.5), (2, '2025-07-01', 78), (3, '2026-02-01', 88.25);
INSERT INTO scratch_notes (note) VALUES ('remember the fees');
REFRESH MATERIALIZED VIEW "Reporting".house_counts;
