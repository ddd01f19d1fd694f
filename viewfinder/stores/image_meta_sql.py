"""SQLite: `image_meta`, every node of each image's metadata JSON flattened into indexed rows,
so that a selective filter on `metadata.<path>` reads an index instead of parsing the JSON of
every image of the tenant (stores/filter_sql.py uses it).

One row per node below the root (json_tree): its `path` is SQLite's `fullkey` (`$.trip.city`),
`vtype` its JSON type ('text', 'integer', 'real', 'true', 'false', 'null', 'object', 'array'),
`num` the number (integers and reals only) and `txt` the string (text only). Triggers keep it in
step with `images` inside the writing transaction (insert, metadata update, delete); the
migration fills it for the rows already stored. Malformed metadata JSON flattens to nothing, so
one bad row never fails a write or a listing.

PostgreSQL serves the same need with a GIN index (jsonb_path_ops) over the metadata parsed by
`viewfinder_metadata(text)`, which reads malformed JSON as `{}`; the compiler writes equality
as containment (`@>`), which that index answers, rechecked by the exact condition.
"""

from __future__ import annotations

import re

_SAFE_JSON = "CASE WHEN json_valid({row}.metadata) THEN {row}.metadata ELSE '{{}}' END"


def _fill(row: str) -> str:
    return (
        "INSERT INTO image_meta (tenant, path, vtype, num, txt, image_id) "
        f"SELECT {row}.tenant, n.fullkey, n.type, "
        "CASE WHEN n.type IN ('integer', 'real') THEN n.atom END, "
        "CASE WHEN n.type = 'text' THEN n.atom END, "
        f"{row}.image_id FROM json_tree({_SAFE_JSON.format(row=row)}) AS n WHERE n.id > 0"
    )


SQLITE_MIGRATION = f"""
CREATE TABLE image_meta (
    tenant TEXT NOT NULL,
    path TEXT NOT NULL,
    vtype TEXT NOT NULL,
    num,  -- no type: integers stay exact integers, reals stay reals
    txt TEXT,
    image_id TEXT NOT NULL
);
CREATE INDEX image_meta_by_num ON image_meta (tenant, path, num);
CREATE INDEX image_meta_by_txt ON image_meta (tenant, path, txt);
CREATE INDEX image_meta_by_image ON image_meta (image_id);
CREATE TRIGGER image_meta_insert AFTER INSERT ON images BEGIN
    {_fill("NEW")};
END;
CREATE TRIGGER image_meta_update AFTER UPDATE OF metadata, tenant, image_id ON images BEGIN
    DELETE FROM image_meta WHERE image_id = OLD.image_id;
    {_fill("NEW")};
END;
CREATE TRIGGER image_meta_delete AFTER DELETE ON images BEGIN
    DELETE FROM image_meta WHERE image_id = OLD.image_id;
END;
{_fill("images").replace(" FROM json_tree(", " FROM images, json_tree(")};
"""

# A key SQLite writes bare in `fullkey` (`.city`); other keys it quotes, and those conditions
# keep to the JSON path, which reads every row but needs no guess at the quoting.
_BARE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def side_table_path(path: tuple[str, ...]) -> str | None:
    """The `image_meta.path` of a metadata key path, or None when it is not served there."""
    if not all(_BARE_KEY.fullmatch(p) for p in path):
        return None
    return "$" + "".join("." + p for p in path)


POSTGRES_MIGRATION = """
CREATE FUNCTION viewfinder_metadata(doc TEXT) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    RETURN doc::jsonb;
EXCEPTION WHEN others THEN
    RETURN '{}'::jsonb;
END
$fn$;
CREATE INDEX images_by_metadata ON images USING gin (viewfinder_metadata(metadata) jsonb_path_ops);
"""
