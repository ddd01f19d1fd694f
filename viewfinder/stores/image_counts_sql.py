"""Image counts per (tenant, status), kept by triggers, so `/v1/status` reads a few rows
instead of counting every image.

One migration per SQL dialect (appended to the MIGRATIONS of sqlite_metadata.py and
postgres_metadata.py): the table, filled once from `images`, and triggers that keep it in the
same transaction as every insert, delete and status change. PostgreSQL uses statement-level
triggers that touch the counter rows in (tenant, status) order, so that concurrent workers
take their locks in the same order.
"""

from __future__ import annotations

from typing import Any

SQLITE_MIGRATION = """
CREATE TABLE image_counts (
    tenant TEXT NOT NULL,
    status INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (tenant, status)
) WITHOUT ROWID;
INSERT INTO image_counts (tenant, status, n)
    SELECT tenant, status, COUNT(*) FROM images GROUP BY tenant, status;
CREATE TRIGGER image_counts_insert AFTER INSERT ON images BEGIN
    INSERT INTO image_counts (tenant, status, n) VALUES (NEW.tenant, NEW.status, 1)
    ON CONFLICT (tenant, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER image_counts_delete AFTER DELETE ON images BEGIN
    UPDATE image_counts SET n = n - 1 WHERE tenant = OLD.tenant AND status = OLD.status;
END;
CREATE TRIGGER image_counts_update AFTER UPDATE OF status, tenant ON images
WHEN OLD.status IS NOT NEW.status OR OLD.tenant IS NOT NEW.tenant BEGIN
    UPDATE image_counts SET n = n - 1 WHERE tenant = OLD.tenant AND status = OLD.status;
    INSERT INTO image_counts (tenant, status, n) VALUES (NEW.tenant, NEW.status, 1)
    ON CONFLICT (tenant, status) DO UPDATE SET n = n + 1;
END;
"""

POSTGRES_MIGRATION = """
CREATE TABLE image_counts (
    tenant TEXT NOT NULL,
    status INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant, status)
);
INSERT INTO image_counts (tenant, status, n)
    SELECT tenant, status, COUNT(*) FROM images GROUP BY tenant, status;
CREATE FUNCTION image_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO image_counts (tenant, status, n)
            SELECT tenant, status, COUNT(*) FROM new_rows
            GROUP BY tenant, status ORDER BY tenant, status
        ON CONFLICT (tenant, status) DO UPDATE SET n = image_counts.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO image_counts (tenant, status, n)
            SELECT tenant, status, -COUNT(*) FROM old_rows
            GROUP BY tenant, status ORDER BY tenant, status
        ON CONFLICT (tenant, status) DO UPDATE SET n = image_counts.n + EXCLUDED.n;
    ELSE
        INSERT INTO image_counts (tenant, status, n)
            SELECT tenant, status, SUM(d) FROM (
                SELECT o.tenant, o.status, -1 AS d
                FROM old_rows o JOIN new_rows w ON w.image_id = o.image_id
                WHERE o.status <> w.status OR o.tenant <> w.tenant
                UNION ALL
                SELECT w.tenant, w.status, 1 AS d
                FROM old_rows o JOIN new_rows w ON w.image_id = o.image_id
                WHERE o.status <> w.status OR o.tenant <> w.tenant
            ) AS changed
            GROUP BY tenant, status HAVING SUM(d) <> 0 ORDER BY tenant, status
        ON CONFLICT (tenant, status) DO UPDATE SET n = image_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER image_counts_insert AFTER INSERT ON images
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION image_counts_apply();
CREATE TRIGGER image_counts_delete AFTER DELETE ON images
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION image_counts_apply();
CREATE TRIGGER image_counts_update AFTER UPDATE ON images
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION image_counts_apply();
"""


def count_query(status: int | None, tenant: str | None, mark: str = "?") -> tuple[str, list[Any]]:
    """The SQL (and parameters) that sums the maintained counts."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append(f"status = {mark}")
        params.append(status)
    if tenant is not None:
        clauses.append(f"tenant = {mark}")
        params.append(tenant)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT COALESCE(SUM(n), 0) AS n FROM image_counts{where}", params
