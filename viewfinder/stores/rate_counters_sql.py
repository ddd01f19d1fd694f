"""Rate-limit counters in PostgreSQL, shared by every API process (api/ratelimit.py).

One row per (key, endpoint): the start of its current fixed window and the requests counted
in it. Windows follow the database's clock, the same for every process; the first request
after a window ended starts the next one and resets the row, so the table holds one row per
key and endpoint used, no more.
"""

from __future__ import annotations

from typing import Any

MIGRATION = """
CREATE TABLE rate_counters (
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    window_start DOUBLE PRECISION NOT NULL,
    hits BIGINT NOT NULL,
    PRIMARY KEY (key_id, endpoint)
);
"""

# One atomic statement: concurrent requests of every process are counted once each. A window
# begins with the first request after the previous one ended (as the in-memory log's does).
COUNT_REQUEST = (
    "WITH t AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) "
    "INSERT INTO rate_counters AS c (key_id, endpoint, window_start, hits) "
    "SELECT %(key)s, %(ep)s, t.now, 1 FROM t "
    "ON CONFLICT (key_id, endpoint) DO UPDATE SET "
    "hits = CASE WHEN c.window_start + %(w)s > EXCLUDED.window_start "
    "THEN c.hits + 1 ELSE 1 END, "
    "window_start = CASE WHEN c.window_start + %(w)s > EXCLUDED.window_start "
    "THEN c.window_start ELSE EXCLUDED.window_start END "
    "RETURNING c.hits, c.window_start + %(w)s - (SELECT now FROM t) AS reset"
)


def count_params(key_id: str, endpoint: str, window_s: float) -> dict[str, Any]:
    """The parameters of COUNT_REQUEST."""
    return {"key": key_id, "ep": endpoint, "w": float(window_s)}


def counted(row: dict[str, Any]) -> tuple[int, float]:
    """(requests in the window, seconds until it ends) from COUNT_REQUEST's row."""
    return int(row["hits"]), max(0.0, float(row["reset"]))
