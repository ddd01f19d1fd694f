"""Where a Milvus vector index lives: its URL parsed into a target, the connection, and the
alias that names the active collection (`promote` moves it; see milvus_vectors.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

from pymilvus import MilvusClient, MilvusException

from ..errors import ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "viewfinder"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")


@dataclass(frozen=True)
class MilvusTarget:
    """Where the vectors live: a server URI (or Lite file), the collection name, credentials."""

    uri: str
    collection: str = DEFAULT_COLLECTION
    token: str = ""
    db_name: str = ""
    index_type: str = "HNSW"

    @property
    def lite(self) -> bool:
        """A Milvus Lite file, served inside this process."""
        return not self.uri.startswith(("http://", "https://"))


def parse_url(url: str, *, token: str | None = None, index_type: str = "HNSW") -> MilvusTarget:
    """The target a `milvus://`, `milvus+https://` or `milvus-lite://` URL names."""
    parts = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "milvus-lite":
        path = url[len("milvus-lite://") :].split("?", 1)[0]
        if not path.endswith(".db"):
            raise ConfigurationError(
                f"Milvus Lite URL {url!r} must name a file ending in .db, e.g. "
                "milvus-lite:///var/lib/viewfinder/vectors.db"
            )
        name = query.get("collection", DEFAULT_COLLECTION)
        target = MilvusTarget(uri=path, collection=name, index_type=index_type.upper())
    elif parts.scheme in ("milvus", "milvus+https"):
        if not parts.hostname:
            raise ConfigurationError(f"Milvus URL {url!r} names no host: milvus://HOST:PORT/NAME")
        http = "https" if parts.scheme == "milvus+https" else "http"
        userinfo = ""
        if parts.username:
            userinfo = unquote(parts.username) + (
                f":{unquote(parts.password)}" if parts.password else ""
            )
        target = MilvusTarget(
            uri=f"{http}://{parts.hostname}:{parts.port or 19530}",
            collection=parts.path.strip("/") or DEFAULT_COLLECTION,
            token=token or userinfo,
            db_name=query.get("db", ""),
            index_type=index_type.upper(),
        )
    else:
        raise ConfigurationError(f"not a Milvus URL: {url!r}")
    if not _NAME.match(target.collection):
        raise ConfigurationError(
            f"Milvus collection name {target.collection!r}: use letters, digits and _"
        )
    return target


def generation(name: str) -> int:
    """The generation N of a physical collection NAME_g<N> (0 for none)."""
    match = re.search(r"_g(\d+)$", name)
    return int(match.group(1)) if match else 0


def connect(target: MilvusTarget) -> MilvusClient:
    """A client of the target's server (or Lite file); a refused connection is a
    ConfigurationError naming the settings."""
    try:
        return MilvusClient(
            uri=target.uri,
            token=target.token,
            db_name=target.db_name,
            timeout=30,
            grpc_options=_GRPC_OPTIONS,
        )
    except MilvusException as exc:
        raise ConfigurationError(
            f"cannot connect to Milvus at {target.uri}: {exc.message}; check "
            "VIEWFINDER_VECTOR_URL and VIEWFINDER_MILVUS_TOKEN"
        ) from exc


# pymilvus pings every 10 s even on an idle channel; gRPC servers that keep the library's
# default ping policy (Milvus Lite among them) answer that with GOAWAY "too_many_pings", and
# the shared channel pymilvus caches for the address is dead from then on. Ping only while a
# call is in flight, and no more often than such servers accept (5 minutes).
_GRPC_OPTIONS = {
    "grpc.keepalive_time_ms": 330_000,
    "grpc.keepalive_permit_without_calls": 0,
}


def active_collection(client: MilvusClient, alias: str) -> str | None:
    """The collection the alias points at, or None before the first open."""
    if alias not in client.list_aliases().get("aliases", []):
        return None
    return str(client.describe_alias(alias)["collection_name"])


def promote(target: MilvusTarget) -> None:
    """Point the alias at the shadow collection: atomic for every process at once."""
    client = connect(target)
    try:
        active = active_collection(client, target.collection)
        if active is None:
            raise ConfigurationError(f"no Milvus collection {target.collection} to promote over")
        shadow = f"{target.collection}_g{generation(active) + 1}"
        if not client.has_collection(shadow):
            raise ConfigurationError(f"no shadow Milvus collection {shadow} to promote")
        client.alter_alias(collection_name=shadow, alias=target.collection)
        log.info("Milvus alias %s now points at %s", target.collection, shadow)
    finally:
        client.close()
