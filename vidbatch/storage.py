"""Where things live: catalogs to read, and an output root (local folder or s3://bucket/prefix).

This is the IO edge. URIs are resolved once into an `OutputRoot`; the rest of the code passes the
root and relative keys, never concatenated path strings. S3 goes through boto3 with the standard
credential chain; AWS_ENDPOINT_URL_S3 points it at an S3-compatible store.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import polars as pl

from vidbatch.errors import CatalogError, LayoutError, StorageError
from vidbatch.layout import check_key

__all__ = [
    "OutputRoot",
    "LocalRoot",
    "S3Root",
    "open_root",
    "read_catalog",
    "fetch_to",
    "sha256_of",
    "s3_client",
    "split_s3",
    "work_folder",
]


def s3_client():
    import boto3  # lazy: nothing heavy at import time

    return boto3.client("s3")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"not an s3:// URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def _named_fault(verb: str):
    """A root's IO method whose failures (a full disk, S3 stopped, botocore's many errors) raise one
    StorageError naming the root, what was being done and the cause; LayoutError, StorageError and
    a missing file (FileNotFoundError: the caller's to read) pass as they are."""

    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except (LayoutError, StorageError, FileNotFoundError):
                raise
            except Exception as err:
                cause = (str(err).strip().splitlines() or [""])[0][:300]
                raise StorageError(
                    f"the output root {self.uri} cannot be {verb} ({type(err).__name__}: {cause})"
                ) from None

        return call

    return wrap


class OutputRoot:
    """An output root. Keys are relative, '/'-separated (e.g. 'assets/spring/a1.mp4'). Its IO
    methods raise StorageError in one line when the storage fails (`_named_fault`)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name, verb in (
            ("put_file", "written"),
            ("write_parquet", "written"),
            ("read_parquet", "read"),
            ("read_parquet_dir", "read"),
            ("exists", "read"),
        ):
            if name in cls.__dict__:
                setattr(cls, name, _named_fault(verb)(cls.__dict__[name]))

    uri: str

    def key_uri(self, key: str) -> str:
        raise NotImplementedError

    def key_of(self, uri: str | None) -> str | None:
        """The key of a URI under this root (None when it is elsewhere or missing)."""
        base = self.key_uri("")
        if uri is None or not uri.startswith(base):
            return None
        return uri[len(base) :].lstrip("/") or None

    def share_url(self, key: str, expires_s: int = 7 * 86400) -> str | None:
        """An http(s) URL a browser (the Prefect UI) can open for `key`, or None: a local folder
        has none. S3: a presigned GET, valid `expires_s` (at most 7 days)."""
        return None

    def put_file(self, local: Path, key: str) -> str:
        """Copy a local file to `key`; returns its URI."""
        raise NotImplementedError

    def write_parquet(self, frame: pl.DataFrame, key: str) -> str:
        raise NotImplementedError

    def read_parquet_dir(self, prefix: str, schema: dict) -> pl.DataFrame:
        """All Parquet parts under `prefix` as one frame (empty frame with `schema` if none)."""
        raise NotImplementedError

    def read_parquet(self, key: str, schema: dict) -> pl.DataFrame:
        """One Parquet file; FileNotFoundError when there is none at `key`."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def check(self) -> None:
        """StorageError when the root cannot be used (a local folder was made by open_root)."""

    def append_part(self, frame: pl.DataFrame, prefix: str) -> str:
        """Append-only write: a new uniquely named Parquet part under `prefix`."""
        return self.write_parquet(frame, f"{prefix}/part-{uuid.uuid4().hex}.parquet")


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary file beside `target` that replaces it atomically (readers never see half a file);
    on failure it is removed, so a full disk gets back what the failed write took (the ledger's
    next row may need it)."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class LocalRoot(OutputRoot):
    path: Path

    @property
    def uri(self) -> str:  # type: ignore[override]
        return str(self.path)

    @functools.cached_property
    def _base(self) -> Path:
        return self.path.resolve()  # once: realpath reads every component of the path

    def _local(self, key: str) -> Path:
        """Where `key` lives; LayoutError when it would resolve outside the root (a symlink included)."""
        base = self._base
        target = base.joinpath(*check_key(key).split("/"))
        if base not in target.resolve().parents:
            raise LayoutError(f"refusing key {key[:120]!r}: it resolves outside the output root {base}")
        return target

    def key_uri(self, key: str) -> str:
        return str(self._local(key)) if key else str(self.path)

    def _target(self, key: str) -> Path:
        target = self._local(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def put_file(self, local: Path, key: str) -> str:
        target = self._target(key)
        with _replacing(target) as tmp:
            shutil.copyfile(local, tmp)
        return str(target)

    def write_parquet(self, frame: pl.DataFrame, key: str) -> str:
        target = self._target(key)
        with _replacing(target) as tmp:
            frame.write_parquet(tmp)
        return str(target)

    def read_parquet(self, key: str, schema: dict) -> pl.DataFrame:
        return pl.read_parquet(self._local(key), schema=schema)

    def exists(self, key: str) -> bool:
        return self._local(key).is_file()

    def read_parquet_dir(self, prefix: str, schema: dict) -> pl.DataFrame:
        folder = self._local(prefix)
        parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        if not parts:
            return pl.DataFrame(schema=schema)
        return pl.concat([conform(pl.read_parquet(part), schema) for part in parts])


@dataclass
class S3Root(OutputRoot):
    """An S3 prefix. Files go up checksummed (SHA-256 per part, verified by S3), multipart above
    `multipart_threshold`, and idempotently: an object already holding the same bytes (its
    `sha256` metadata) is not uploaded again, so a retried task never re-sends a finished upload."""

    bucket: str
    prefix: str
    multipart_threshold: int = 64 << 20
    multipart_chunksize: int = 16 << 20

    @property
    def uri(self) -> str:  # type: ignore[override]
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix.rstrip('/')}/{key}" if self.prefix else key

    def key_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}" if key else self.uri

    def share_url(self, key: str, expires_s: int = 7 * 86400) -> str | None:
        return s3_client().generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=min(int(expires_s), 7 * 86400),
        )

    def put_file(self, local: Path, key: str) -> str:
        from boto3.s3.transfer import TransferConfig

        client, target, digest = s3_client(), self._key(key), sha256_of(local)
        head = self._head(key)
        if head is not None and head.get("Metadata", {}).get("sha256") == digest:
            return self.key_uri(key)  # already there, same bytes
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold, multipart_chunksize=self.multipart_chunksize
        )
        client.upload_file(
            str(local),
            self.bucket,
            target,
            Config=config,
            ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest}},
        )
        return self.key_uri(key)

    def write_parquet(self, frame: pl.DataFrame, key: str) -> str:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        s3_client().put_object(Bucket=self.bucket, Key=self._key(key), Body=buffer.getvalue())
        return self.key_uri(key)

    def _head(self, key: str) -> dict | None:
        """The object's HEAD response, None when there is no object at `key`."""
        from botocore.exceptions import ClientError

        try:
            return s3_client().head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"cannot check {self.key_uri(key)}: {err}") from err

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def check(self) -> None:
        """StorageError in one line when the bucket is missing or S3 cannot be reached: before a run
        spends anything."""
        from botocore.exceptions import ClientError

        try:
            s3_client().head_bucket(Bucket=self.bucket)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    f"output root {self.uri}: bucket '{self.bucket}' does not exist (create it, or "
                    "check the name and AWS_ENDPOINT_URL_S3)"
                ) from None
            raise StorageError(
                f"output root {self.uri}: S3 refused access ({code}); check the credentials "
                "(AWS_* or the instance role)"
            ) from None
        except Exception as err:  # botocore's connection errors are many
            raise StorageError(
                f"output root {self.uri}: S3 cannot be reached ({type(err).__name__}); check "
                "AWS_ENDPOINT_URL_S3 and the network"
            ) from None

    def read_parquet(self, key: str, schema: dict) -> pl.DataFrame:
        client = s3_client()
        try:
            body = client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except client.exceptions.NoSuchKey as err:
            raise FileNotFoundError(self.key_uri(key)) from err
        return pl.read_parquet(io.BytesIO(body), schema=schema)

    def read_parquet_dir(self, prefix: str, schema: dict) -> pl.DataFrame:
        client = s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix) + "/part-"
        )
        keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        frames = [
            conform(pl.read_parquet(io.BytesIO(client.get_object(Bucket=self.bucket, Key=k)["Body"].read())), schema)
            for k in keys
        ]
        return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def conform(frame: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """An append-only table's part in today's `schema`: a column added since it was written is
    null in it (a column it lacks that is not in `schema` is dropped)."""
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    return frame.with_columns(missing).select(list(schema)).cast(schema)


def open_root(uri: str | Path) -> OutputRoot:
    """Resolve an output root once: `s3://bucket/prefix` or a local folder (created if missing)."""
    text = str(uri)
    if text.startswith("s3://"):
        bucket, prefix = split_s3(text)
        return S3Root(bucket, prefix.rstrip("/"))
    if "://" in text:
        raise StorageError(f"unsupported output root {text!r}: use a local folder or s3://bucket/prefix")
    path = Path(text).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"cannot create output folder {path}: {err.strerror}") from err
    return LocalRoot(path)


def _read_bytes(uri: str) -> bytes:
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as err:  # botocore's errors are many; name the URI and the cause
            raise StorageError(f"cannot read {uri}: {err}") from err
    try:
        return Path(uri).expanduser().read_bytes()
    except OSError as err:
        raise StorageError(f"cannot read {uri}: {err.strerror}") from err


def read_catalog(uri: str) -> pl.DataFrame:
    """Read a catalog Parquet file from a local path or s3:// URI; CatalogError if it is not Parquet."""
    try:
        data = _read_bytes(uri)
    except StorageError as err:
        raise CatalogError(str(err)) from err
    if not data.startswith(b"PAR1"):
        raise CatalogError(f"{uri} is not a Parquet file (no PAR1 magic bytes)")
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception as err:  # polars raises several types for corrupt files
        raise CatalogError(f"{uri} is not a readable Parquet file: {err}") from err


def fetch_to(uri: str, folder: Path, name: str) -> Path:
    """Make a local copy of a file (an image reference, a stored clip) as `folder/name` (a name
    the caller chose, never one taken from the URI) and return its path."""
    data = _read_bytes(uri)
    target = folder / name
    target.write_bytes(data)
    return target


@contextlib.contextmanager
def work_folder(run_id: str) -> Iterator[Path]:
    """A run's scratch folder in the system temp folder (`vidbatch-<run>-*`), removed when the run
    ends, failed or not; keys and paths under it come from vidbatch.layout."""
    folder = Path(tempfile.mkdtemp(prefix=f"vidbatch-{run_id[:8]}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
