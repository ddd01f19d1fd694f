"""Vectors in Milvus: a cluster shared by many processes, or a Milvus Lite folder on one machine.

URL forms (see docs/deployment.md):

- `milvus://[USER:PASSWORD@]HOST:PORT/NAME[?db=DATABASE]` a Milvus server or cluster;
  `milvus+https://...` the same over TLS (e.g. Zilliz Cloud).
- `milvus-lite:///PATH/TO/vectors.db[?collection=NAME]` Milvus Lite, in this process only.

Searches go through an alias `NAME` that points at a physical collection `NAME_g<N>`; the
collection's properties record the model id, dimension and spec, and an index refuses vectors
of another model. A model switch builds `NAME_g<N+1>` beside it and promotion moves the alias,
which every process sees at once. Vectors are unit length and the metric is inner product.
New collections get an HNSW index by default (`VIEWFINDER_MILVUS_INDEX_TYPE`): Milvus
searches the rows not yet sealed into indexed segments exactly, so a small collection answers
like the exact index and a large one through the graph; `FLAT` keeps every search exact.
The tenant is the partition key, so a tenant's search reads only the partitions it hashes to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from typing import Any, TypeVar

import numpy as np
from pymilvus import DataType, MilvusException

from ..domain.ports import StoredModel
from ..errors import ConfigurationError, Unavailable, ValidationError
from .milvus_target import (
    MilvusTarget,
    active_collection,
    connect,
    generation,
)

log = logging.getLogger(__name__)

_MAX_TOPK = 16384  # Milvus refuses larger limits
_CHUNK = 1000  # rows per write request, well under the gRPC message limit
_PROPS = ("viewfinder.model_id", "viewfinder.dim", "viewfinder.spec")
_HNSW_EF = 128  # candidates an HNSW search explores: recall@10 >= 0.98 at a million vectors
_SUBSET_CHUNK = 1000  # ids per search expression of a filtered search
_NOT_LOADED = 101  # Milvus's code for a collection not loaded (e.g. released by a restart)
_T = TypeVar("_T")


class MilvusVectorIndex:
    """The vector index in one Milvus collection; every search filters on the tenant."""

    def __init__(self, target: MilvusTarget, *, shadow: bool = False) -> None:
        self.target = target
        self._shadow = shadow
        self._client = connect(target)
        # Milvus Lite serves one process and is not safe for concurrent writes to one
        # collection; a cluster is, so only Lite writes are serialised here.
        self._write_lock: AbstractContextManager[Any] = (
            threading.RLock() if target.lite else nullcontext()
        )
        with self._calling("open"):
            active = active_collection(self._client, target.collection)
        if shadow:
            gen = generation(active) + 1 if active else 2
            self.name = f"{target.collection}_g{gen}"
        else:
            self.name = active or f"{target.collection}_g1"
        self._model_id: str | None = None
        self._dim: int | None = None
        self._recover_lock = threading.Lock()

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn Milvus failures into a 503 that names no internals (the log has details)."""
        try:
            yield
        except MilvusException as exc:
            log.warning("Milvus %s at %s failed: %s", what, self.target.uri, exc)
            raise Unavailable("the vector index is unavailable; retry shortly") from exc

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """One Milvus call; after a Milvus restart (the collection comes back released, the
        connection may be gone) reconnect, load the collection and try once more."""
        try:
            return fn()
        except MilvusException as exc:
            if not self._recover(what, exc):
                log.warning("Milvus %s at %s failed: %s", what, self.target.uri, exc)
                raise Unavailable("the vector index is unavailable; retry shortly") from exc
        with self._calling(what):
            return fn()

    def _recover(self, what: str, exc: MilvusException) -> bool:
        """Reconnect (unless only the collection was released) and load the collection;
        whether that worked, so the call is worth trying again."""
        if self._dim is None:
            return False  # not opened: nothing of ours to load
        released = getattr(exc, "code", None) == _NOT_LOADED or "released" in str(exc).lower()
        with self._recover_lock:
            try:
                if not released:
                    client, self._client = self._client, connect(self.target)
                    with contextlib.suppress(Exception):
                        client.close()
                self._client.load_collection(self.name)
            except (MilvusException, ConfigurationError) as again:
                log.warning("Milvus at %s: cannot recover: %s", self.target.uri, again)
                return False
        log.warning(
            "Milvus %s at %s failed (%s); %s and loaded collection %s again",
            what,
            self.target.uri,
            exc,
            "the collection was released" if released else "reconnected",
            self.name,
        )
        return True

    @property
    def model_id(self) -> str | None:
        return self._model_id

    @property
    def dim(self) -> int | None:
        return self._dim

    def stored_model(self) -> StoredModel | None:
        with self._calling("describe"):
            if not self._client.has_collection(self.name):
                return None
            props = self._client.describe_collection(self.name).get("properties", {})
        if _PROPS[0] not in props:
            raise ConfigurationError(
                f"Milvus collection {self.name} was not made by Viewfinder; name another "
                "collection in VIEWFINDER_VECTOR_URL"
            )
        return StoredModel(props[_PROPS[0]], int(props[_PROPS[1]]), props.get(_PROPS[2], ""))

    def open(self, model_id: str, dim: int, spec: str = "") -> None:
        stored = self.stored_model()
        with self._write_lock, self._calling("open"):
            if stored is None:
                self._create(self.name, model_id, dim, spec)
            elif (stored.model_id, stored.dim) != (model_id, dim):
                raise ConfigurationError(
                    f"the Milvus collection {self.name} holds vectors of model {stored.model_id} "
                    f"(dim {stored.dim}), not {model_id} (dim {dim}); run `viewfinder reindex` "
                    "to re-embed every image with the new model, or select the old model again"
                )
            elif spec and stored.spec != spec:
                self._client.alter_collection_properties(self.name, properties={_PROPS[2]: spec})
            if self._shadow:
                self._drop_retired()
            elif active_collection(self._client, self.target.collection) is None:
                self._claim_alias()
            self._client.load_collection(self.name)
        self._model_id, self._dim = model_id, dim

    def _create(self, name: str, model_id: str, dim: int, spec: str) -> None:
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, max_length=128, is_primary=True)
        # a partition key: a tenant's search reads the partitions its name hashes to
        schema.add_field("tenant", DataType.VARCHAR, max_length=512, is_partition_key=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = self._client.prepare_index_params()
        params = {"M": 16, "efConstruction": 200} if self.target.index_type == "HNSW" else {}
        index.add_index(
            field_name="vector",
            index_type=self.target.index_type,
            metric_type="IP",
            params=params,
        )
        try:
            self._client.create_collection(
                name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",  # a vector written is a vector found, everywhere
                properties={_PROPS[0]: model_id, _PROPS[1]: str(dim), _PROPS[2]: spec},
            )
        except MilvusException:
            if not self._client.has_collection(name):
                raise
            # another process created it first; open() checks its model next time round
        log.info("created Milvus collection %s for %s (dim %d)", name, model_id, dim)

    def _claim_alias(self) -> None:
        """Point the alias at this collection unless another process did so first."""
        try:
            self._client.create_alias(collection_name=self.name, alias=self.target.collection)
        except MilvusException:
            active = active_collection(self._client, self.target.collection)
            if active is None:
                raise
            self.name = active

    def _drop_retired(self) -> None:
        """Drop collections of finished or abandoned switches (neither active nor this one)."""
        active = active_collection(self._client, self.target.collection)
        pattern = re.compile(rf"^{re.escape(self.target.collection)}_g\d+$")
        for name in self._client.list_collections():
            if pattern.match(name) and name not in (active, self.name):
                log.info("dropping retired Milvus collection %s", name)
                self._client.drop_collection(name)

    def _check_open(self) -> int:
        if self._dim is None:
            raise ConfigurationError("vector index used before open()")
        return self._dim

    def upsert(self, ids: Sequence[str], tenants: Sequence[str], vectors: np.ndarray) -> None:
        dim = self._check_open()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), dim) or len(tenants) != len(ids):
            raise ValidationError(f"expected {len(ids)} vectors of dim {dim}, got {vectors.shape}")
        rows = [
            {"id": i, "tenant": t, "vector": v.tolist()}
            for i, t, v in zip(ids, tenants, vectors, strict=True)
        ]
        with self._write_lock:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                self._call("upsert", partial(self._write, "upsert", chunk))

    def _write(self, what: str, chunk: list[Any]) -> None:
        """Upsert rows or delete ids, through the current client (a reconnect replaces it)."""
        if what == "upsert":
            self._client.upsert(self.name, chunk)
        else:
            self._client.delete(self.name, ids=chunk)

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        with self._write_lock:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                self._call("delete", partial(self._write, "delete", chunk))

    def search(self, tenant: str, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        dim = self._check_open()
        if k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(dim)
        k = min(k, _MAX_TOPK)
        params: dict[str, Any] = {}
        if self.target.index_type == "HNSW":
            params = {"ef": max(k, _HNSW_EF)}
        found = self._call(
            "search",
            lambda: self._client.search(
                self.name,
                data=[query.tolist()],
                anns_field="vector",
                # tenant isolation lives in the query itself; the literal is JSON-quoted,
                # which Milvus parses as an escaped string
                filter=f"tenant == {json.dumps(tenant, ensure_ascii=False)}",
                limit=k,
                output_fields=["id"],
                search_params={"metric_type": "IP", "params": params},
            ),
        )
        return [(str(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def search_subset(
        self, tenant: str, query: np.ndarray, k: int, ids: Sequence[str]
    ) -> list[tuple[str, float]]:
        dim = self._check_open()
        ids = list(ids)
        if k <= 0 or not ids:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(dim)
        k = min(k, _MAX_TOPK)
        found: list[tuple[str, float]] = []
        # The id list is pushed down into the search expression; with the tenant it selects
        # the rows Milvus scores (a filtered search: exact over a small id set), in chunks so
        # that one expression stays small.
        for start in range(0, len(ids), _SUBSET_CHUNK):
            chunk = ids[start : start + _SUBSET_CHUNK]
            expr = (
                f"tenant == {json.dumps(tenant, ensure_ascii=False)} and "
                f"id in {json.dumps(chunk, ensure_ascii=False)}"
            )
            hits = self._call("search", partial(self._search_expr, query, expr, min(k, len(chunk))))
            found.extend((str(hit["id"]), float(hit["distance"])) for hit in hits[0])
        found.sort(key=lambda pair: -pair[1])
        return found[:k]

    def _search_expr(self, query: np.ndarray, expr: str, k: int) -> Any:
        """One search restricted by `expr`, through the current client (a reconnect
        replaces it)."""
        return self._client.search(
            self.name,
            data=[query.tolist()],
            anns_field="vector",
            filter=expr,
            limit=k,
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": self._subset_params(k)},
        )

    def _subset_params(self, k: int) -> dict[str, Any]:
        # ef at least the chunk size: HNSW then visits every row that passes the expression
        if self.target.index_type == "HNSW":
            return {"ef": max(k, _HNSW_EF, _SUBSET_CHUNK)}
        return {}

    def vectors_of(self, tenant: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        dim = self._check_open()
        found: dict[str, np.ndarray] = {}
        ids = list(ids)
        for start in range(0, len(ids), _CHUNK):
            with self._calling("get"):
                rows = self._client.get(
                    self.name, ids=ids[start : start + _CHUNK], output_fields=["tenant", "vector"]
                )
            for row in rows:
                if row["tenant"] == tenant:  # another tenant's id is as good as absent
                    found[str(row["id"])] = np.asarray(row["vector"], np.float32).reshape(dim)
        return found

    def _iterate(self, fields: list[str], batch_size: int) -> Iterator[list[dict[str, Any]]]:
        self._check_open()
        it = self._call(
            "query",
            lambda: self._client.query_iterator(
                self.name, batch_size=min(batch_size, _MAX_TOPK), filter="", output_fields=fields
            ),
        )
        try:
            while True:
                with self._calling("query"):
                    batch = it.next()
                if not batch:
                    return
                yield list(batch)
        finally:
            it.close()

    def iter_ids(self, batch_size: int) -> Iterator[list[str]]:
        """Every id, a batch at a time (reconciling in bounded memory)."""
        for batch in self._iterate(["id"], batch_size):
            yield [str(row["id"]) for row in batch]

    def present_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of these ids that have a vector."""
        self._check_open()
        ids = list(ids)
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = self._call("get", partial(self._get_ids, chunk))
            found.update(str(row["id"]) for row in rows)
        return found

    def _get_ids(self, chunk: list[str]) -> list[dict[str, Any]]:
        return list(self._client.get(self.name, ids=chunk, output_fields=["id"]))

    def ids(self) -> set[str]:
        return {str(row["id"]) for batch in self._iterate(["id"], 10_000) for row in batch}

    def count(self, tenant: str | None = None) -> int:
        self._check_open()
        where = "" if tenant is None else f"tenant == {json.dumps(tenant, ensure_ascii=False)}"
        rows = self._call(
            "count", lambda: self._client.query(self.name, filter=where, output_fields=["count(*)"])
        )
        return int(rows[0]["count(*)"])

    def iter_vectors(
        self, batch_size: int = 1000
    ) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        dim = self._check_open()
        for batch in self._iterate(["id", "tenant", "vector"], batch_size):
            vectors = np.asarray([row["vector"] for row in batch], dtype=np.float32)
            yield (
                [str(row["id"]) for row in batch],
                [str(row["tenant"]) for row in batch],
                vectors.reshape(len(batch), dim),
            )

    def reset(self, model_id: str, dim: int, spec: str = "") -> None:
        with self._write_lock, self._calling("reset"):
            if self._shadow:
                if self._client.has_collection(self.name):
                    self._client.drop_collection(self.name)
                self._create(self.name, model_id, dim, spec)
            else:
                # a fresh generation, then the alias, then the old ones: searches never see
                # a missing collection
                pattern = re.compile(rf"^{re.escape(self.target.collection)}_g\d+$")
                existing = [n for n in self._client.list_collections() if pattern.match(n)]
                old = active_collection(self._client, self.target.collection)
                new = f"{self.target.collection}_g{max(map(generation, existing), default=0) + 1}"
                self._create(new, model_id, dim, spec)
                if old is None:
                    self._client.create_alias(collection_name=new, alias=self.target.collection)
                else:
                    self._client.alter_alias(collection_name=new, alias=self.target.collection)
                for name in existing:
                    self._client.drop_collection(name)
                self.name = new
            self._client.load_collection(self.name)
        self._model_id, self._dim = model_id, dim

    def ping(self, timeout_s: float) -> None:
        if self._dim is None:
            raise Unavailable(f"the Milvus collection {self.name} is not open yet")
        with self._calling("ping"):
            state = self._client.get_load_state(self.name, timeout=timeout_s).get("state")
        if getattr(state, "name", str(state)) == "Loaded":
            return
        # Released by a Milvus restart: load it from here too, or a process taken out of
        # service for not being ready would never get the search that reloads it.
        try:
            self._client.load_collection(self.name, timeout=timeout_s)
        except MilvusException as exc:
            raise Unavailable(
                f"the Milvus collection {self.name} is not loaded ({state}); loading it"
            ) from exc
        log.warning("Milvus collection %s was %s; loaded it again", self.name, state)

    def closed_cleanly(self) -> bool:
        return False  # shared by processes that come and go: always reconcile

    def close(self) -> None:
        self._client.close()
