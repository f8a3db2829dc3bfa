-- Queue statistics without scanning the finished jobs, and an index for listing jobs.
--
-- Delivered and failed jobs pile up by the million, so their numbers are kept in one row that
-- triggers maintain on every change into or out of those states (any code path, bulk updates
-- included). The unfinished states are counted from a partial index that holds only them.

CREATE TABLE job_totals (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    delivered INTEGER NOT NULL CHECK (delivered >= 0),
    failed    INTEGER NOT NULL CHECK (failed >= 0)
) STRICT;

INSERT INTO job_totals (id, delivered, failed)
SELECT 1,
       COALESCE(SUM(status = 'delivered'), 0),
       COALESCE(SUM(status = 'failed'), 0)
  FROM jobs;

CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs
    WHEN NEW.status IN ('delivered', 'failed')
BEGIN
    UPDATE job_totals
       SET delivered = delivered + (NEW.status = 'delivered'),
           failed = failed + (NEW.status = 'failed')
     WHERE id = 1;
END;

CREATE TRIGGER job_totals_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status IS NOT NEW.status
         AND (OLD.status IN ('delivered', 'failed') OR NEW.status IN ('delivered', 'failed'))
BEGIN
    UPDATE job_totals
       SET delivered = delivered + (NEW.status = 'delivered') - (OLD.status = 'delivered'),
           failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed')
     WHERE id = 1;
END;

CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs
    WHEN OLD.status IN ('delivered', 'failed')
BEGIN
    UPDATE job_totals
       SET delivered = delivered - (OLD.status = 'delivered'),
           failed = failed - (OLD.status = 'failed')
     WHERE id = 1;
END;

-- counting the unfinished states reads only their rows
CREATE INDEX jobs_open_status_idx ON jobs (status)
    WHERE status IN ('queued', 'running', 'paused');

-- listing jobs newest first (the operator's view) reads this index backwards instead of sorting
-- every job
CREATE INDEX jobs_created_idx ON jobs (created_at, id);
