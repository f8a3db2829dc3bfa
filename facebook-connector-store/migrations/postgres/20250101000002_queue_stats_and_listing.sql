-- Queue statistics without scanning the finished jobs, and an index for listing jobs.
--
-- Delivered and failed jobs pile up by the million, so their numbers are kept in one row that
-- triggers maintain on every change into or out of those states (any code path, bulk updates
-- included). The unfinished states are counted from a partial index that holds only them.
--
-- Lock order: a statement locks its job rows first and this row last (the trigger fires at the
-- end of the statement), and no transaction waits for a job row while holding it, so the
-- shared row cannot deadlock; finishing a job happens a few times per second at most, far below
-- what one row absorbs.

CREATE TABLE job_totals (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    delivered BIGINT NOT NULL CHECK (delivered >= 0),
    failed    BIGINT NOT NULL CHECK (failed >= 0)
);

-- Statement-level triggers with transition tables: one update of the totals row per statement,
-- however many jobs it moved (a row-level trigger would update the row once per job, and
-- PostgreSQL's chain of row versions inside one transaction makes that quadratic for bulk
-- changes such as archiving a profile). For a statement that moves no job into or out of a
-- finished state the counts cancel out and the row is not touched.
CREATE FUNCTION job_totals_apply(delivered_delta BIGINT, failed_delta BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF delivered_delta <> 0 OR failed_delta <> 0 THEN
        UPDATE job_totals
           SET delivered = delivered + delivered_delta, failed = failed + failed_delta
         WHERE id = 1;
    END IF;
END
$$;

CREATE FUNCTION job_totals_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_totals_apply(
        (SELECT COUNT(*) FROM new_rows WHERE status = 'delivered'),
        (SELECT COUNT(*) FROM new_rows WHERE status = 'failed'));
    RETURN NULL;
END
$$;

CREATE FUNCTION job_totals_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_totals_apply(
        (SELECT COUNT(*) FROM new_rows WHERE status = 'delivered')
            - (SELECT COUNT(*) FROM old_rows WHERE status = 'delivered'),
        (SELECT COUNT(*) FROM new_rows WHERE status = 'failed')
            - (SELECT COUNT(*) FROM old_rows WHERE status = 'failed'));
    RETURN NULL;
END
$$;

CREATE FUNCTION job_totals_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_totals_apply(
        -(SELECT COUNT(*) FROM old_rows WHERE status = 'delivered'),
        -(SELECT COUNT(*) FROM old_rows WHERE status = 'failed'));
    RETURN NULL;
END
$$;

-- creating the triggers locks out concurrent job writes until this migration commits, so the
-- backfill below counts exactly what the triggers did not see
CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_totals_after_insert();
CREATE TRIGGER job_totals_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_totals_after_update();
CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_totals_after_delete();

INSERT INTO job_totals (id, delivered, failed)
SELECT 1,
       COUNT(*) FILTER (WHERE status = 'delivered'),
       COUNT(*) FILTER (WHERE status = 'failed')
  FROM jobs;

-- counting the unfinished states reads only their rows
CREATE INDEX jobs_open_status_idx ON jobs (status)
    WHERE status IN ('queued', 'running', 'paused');

-- listing jobs newest first (the operator's view) reads this index backwards instead of sorting
-- every job
CREATE INDEX jobs_created_idx ON jobs (created_at, id);
