"""Re-embedding leases in PostgreSQL: during a model switch, the worker processes share the
re-embedding of the indexed images, each image taken by one process (domain/spaces.py).

A row per (target model, image): who re-embeds it is who leased it last; a lease that runs
out (its process died) can be taken again; a finished image keeps a lease without end, so
an image that could not be re-embedded (its bytes are gone) is not tried again by others.
Rows go with their image (a foreign key) and with the switch (`clear` at promotion).
"""

from __future__ import annotations

MIGRATION = """
CREATE TABLE reembed_leases (
    target TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    lease_until DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (target, image_id)
);
"""

# Atomic per row: of processes leasing the same image at once, one inserts (or renews an
# expired lease); the others find its row, now leased, and get nothing back for it.
LEASE = (
    "INSERT INTO reembed_leases AS r (target, image_id, lease_until) "
    "SELECT %(target)s, i.image_id, %(until)s FROM images i WHERE i.image_id = ANY(%(ids)s) "
    "ON CONFLICT (target, image_id) DO UPDATE SET lease_until = EXCLUDED.lease_until "
    "WHERE r.lease_until <= %(now)s "
    "RETURNING r.image_id"
)
FINISH = (
    "UPDATE reembed_leases SET lease_until = 'infinity' "
    "WHERE target = %(target)s AND image_id = ANY(%(ids)s)"
)
RELEASE = "DELETE FROM reembed_leases WHERE target = %(target)s AND image_id = ANY(%(ids)s)"
CLEAR = "DELETE FROM reembed_leases WHERE target = %(target)s"
FINISHED = (
    "SELECT image_id FROM reembed_leases WHERE target = %(target)s "
    "AND image_id = ANY(%(ids)s) AND lease_until = 'infinity'"
)
