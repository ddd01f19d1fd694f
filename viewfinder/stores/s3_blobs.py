"""Image bytes in an S3-compatible bucket, content-addressed (`<prefix>/ab/cd/<sha256>`).

A PUT is atomic by nature: readers see the whole object or none, so no temporary names are
needed. The bucket must exist; its reachability and the credentials are checked at start.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from ..errors import ConfigurationError, NotFound, Unavailable, ValidationError

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{64}$")
_MISSING = {"404", "NoSuchKey", "NotFound"}
# What reading an answer's body raises when the connection breaks halfway.
_BROKEN_BODY = (
    ResponseStreamingError,
    IncompleteReadError,
    ReadTimeoutError,
    ConnectionClosedError,
)
_BASE_BACKOFF_S = 0.1  # full jitter, as botocore's standard mode
_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class S3Options:
    """Where and as whom to reach the S3 service (None: boto3's defaults and credential chain)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"
    max_connections: int = 32
    retry_mode: str = "standard"  # botocore's: standard, adaptive (client-side rate limiting)
    max_attempts: int = 5  # per request, the first one included


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    """A bucket (and key prefix) of immutable objects named by their SHA-256."""

    def __init__(self, bucket: str, prefix: str = "", options: S3Options | None = None) -> None:
        opts = options or S3Options()
        if opts.addressing_style not in ("auto", "path", "virtual"):
            raise ConfigurationError(
                f"VIEWFINDER_S3_ADDRESSING_STYLE must be auto, path or virtual, "
                f"not {opts.addressing_style!r}"
            )
        if opts.retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigurationError(
                f"VIEWFINDER_S3_RETRY_MODE must be standard, adaptive or legacy, "
                f"not {opts.retry_mode!r}"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._options = opts
        self._probe: Any = None  # a client with short timeouts for `ping`, made on first use
        self._where = f"s3://{bucket}/{self.prefix}" + (
            f" at {opts.endpoint_url}" if opts.endpoint_url else ""
        )
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=opts.endpoint_url,
            region_name=opts.region,
            aws_access_key_id=opts.access_key_id,
            aws_secret_access_key=opts.secret_access_key,
            config=Config(
                s3={"addressing_style": opts.addressing_style},
                max_pool_connections=opts.max_connections,
                # throttling, 5xx answers and connection errors are retried with backoff
                retries={"total_max_attempts": max(1, opts.max_attempts), "mode": opts.retry_mode},
                connect_timeout=10,
                read_timeout=60,
            ),
        )
        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            raise ConfigurationError(
                f"cannot use bucket {self._where} ({_code(exc) or exc}): create it, or check "
                "VIEWFINDER_BLOB_URL and the S3 credentials"
            ) from exc
        except BotoCoreError as exc:
            raise ConfigurationError(
                f"cannot reach S3 for {self._where}: {exc}; check VIEWFINDER_S3_ENDPOINT_URL "
                "and the S3 credentials"
            ) from exc

    def _key(self, sha256: str) -> str:
        if not _SHA.match(sha256):
            raise ValidationError(f"not a SHA-256 hex digest: {sha256!r}")
        name = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Turn transport and service failures into a 503 that hides the details."""
        try:
            yield
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise
            log.warning("S3 %s on %s failed: %s", what, self._where, exc)
            raise Unavailable("image storage is unavailable; retry shortly") from exc
        except BotoCoreError as exc:
            log.warning("S3 %s on %s failed: %s", what, self._where, exc)
            raise Unavailable("image storage is unavailable; retry shortly") from exc

    def put(self, sha256: str, data: bytes) -> None:
        key = self._key(sha256)
        if self.exists(sha256):
            return  # content-addressed: the same name always holds the same bytes
        with self._call("put"):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, sha256: str) -> bytes:
        key = self._key(sha256)
        attempts = max(1, self._options.max_attempts)
        for attempt in range(attempts):
            try:
                with self._call("get"):
                    response = self._client.get_object(Bucket=self.bucket, Key=key)
                    try:
                        return bytes(response["Body"].read())
                    except _BROKEN_BODY as exc:
                        # botocore retries a request, not the reading of its answer: a body
                        # cut short is read again here, with the same backoff
                        if attempt + 1 == attempts:
                            raise
                        log.info("S3 get of %s cut short (%s); reading again", key, exc)
            except ClientError as exc:  # only "missing" gets here
                raise NotFound("image bytes not found") from exc
            time.sleep(min(_MAX_BACKOFF_S, _BASE_BACKOFF_S * 2**attempt) * random.random())
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def exists(self, sha256: str) -> bool:
        key = self._key(sha256)
        try:
            with self._call("head"):
                self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:  # only "missing" gets here
            return False
        return True

    def delete(self, sha256: str) -> None:
        key = self._key(sha256)
        with self._call("delete"):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def sweep_partial(self, before: float) -> int:
        # A single PUT is all or nothing and this store never starts multipart uploads, so an
        # interrupted write leaves nothing behind. Bytes written whole by an upload that died
        # before its row was committed are the metadata store's holds, swept like any other.
        del before
        return 0

    def ping(self, timeout_s: float) -> None:
        # one try and short timeouts: a probe must answer quickly, not ride out an outage
        try:
            self._probe_client(timeout_s).head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable(f"the bucket {self._where} does not answer: {exc}") from exc

    def _probe_client(self, timeout_s: float) -> Any:
        if self._probe is None:
            self._probe = boto3.session.Session().client(
                "s3",
                endpoint_url=self._options.endpoint_url,
                region_name=self._options.region,
                aws_access_key_id=self._options.access_key_id,
                aws_secret_access_key=self._options.secret_access_key,
                config=Config(
                    s3={"addressing_style": self._options.addressing_style},
                    max_pool_connections=2,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=timeout_s,
                    read_timeout=timeout_s,
                ),
            )
        return self._probe

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self._client.close()
