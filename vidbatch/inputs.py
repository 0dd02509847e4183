"""Where a catalog may read its inputs from, and whether what it names is an image. An IO edge.

A catalog's `image_uri` is one of:
  - a local path, relative to the catalog's folder (or absolute), which must resolve (symlinks
    followed) inside the catalog's folder or inside one of the policy's `[inputs] roots`;
  - a path relative to an `s3://` catalog's prefix, which must stay under it;
  - an `s3://bucket/key` object (boto3's credentials decide what it may read).
`http(s)://` references are refused: vidbatch does not fetch from servers it does not control
(no size, type or time limit there is ours to promise); copy the image to S3 or beside the catalog.

Every distinct image is checked before anything is spent: it exists, is at most
`MAX_IMAGE_BYTES`, and its header is a PNG, JPEG or WebP image with a size. A row that fails is
rejected (column `image_uri`, with the reason); the valid rows carry the resolved URI.
"""

from __future__ import annotations

import io
import posixpath
from pathlib import Path
from urllib.parse import urlparse

import polars as pl

from vidbatch.catalog import REJECTS_SCHEMA, printable, validate_catalog
from vidbatch.errors import StorageError
from vidbatch.storage import s3_client, split_s3

__all__ = ["MAX_IMAGE_BYTES", "IMAGE_FORMATS", "resolve_image", "check_images", "check_catalog", "reference_name"]

MAX_IMAGE_BYTES = 50 << 20
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
_HEADER_BYTES = 1 << 16


def _base_of(catalog: str) -> str:
    """The catalog's folder: an s3:// prefix, or a resolved local folder."""
    if catalog.startswith("s3://"):
        return catalog.rsplit("/", 1)[0]
    return str(Path(catalog).expanduser().resolve().parent)


def resolve_image(uri: str, catalog: str, roots: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    """(the URI to read, None) for an image reference the policy allows, else (None, why not)."""
    scheme = urlparse(uri).scheme if "://" in uri else ""
    base = _base_of(catalog)
    if scheme == "s3":
        return uri, None
    if scheme in ("http", "https"):
        return None, (
            "http(s) image references are not fetched (vidbatch reads only what it controls); "
            "copy the image to s3:// or beside the catalog"
        )
    if scheme:
        return None, f"image_uri scheme '{scheme}://' is not read; use a path beside the catalog or s3://"
    if base.startswith("s3://"):  # a relative reference of an S3 catalog stays under its prefix
        if uri.startswith("/"):
            return None, "an absolute local path cannot be read for a catalog on s3://; use a path beside it"
        joined = posixpath.normpath(posixpath.join(base.removeprefix("s3://"), uri))
        if not joined.startswith(base.removeprefix("s3://") + "/"):
            return None, f"'{uri}' leaves the catalog's prefix {base}"
        return f"s3://{joined}", None
    path = (Path(base) / Path(uri).expanduser()).resolve()
    allowed = [Path(base), *(Path(r).expanduser().resolve() for r in roots)]
    if not any(path == root or root in path.parents for root in allowed):
        listed = ", ".join(str(r) for r in allowed)
        return None, (
            f"'{uri}' resolves to {path}, outside the catalog's folder and the policy's [inputs] roots ({listed})"
        )
    return str(path), None


def _header(uri: str) -> tuple[int, bytes]:
    """(size in bytes, the first bytes) of a local file or S3 object; StorageError when unreadable."""
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        try:
            client = s3_client()
            size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
            head = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_HEADER_BYTES - 1}")["Body"].read()
        except Exception as err:  # botocore's errors are many: the reason, without a traceback
            raise StorageError(f"cannot read {uri}: {type(err).__name__}: {err}") from err
        return size, head
    try:
        with open(uri, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
            return Path(uri).stat().st_size, head
    except OSError as err:
        raise StorageError(f"cannot read {uri}: {err.strerror}") from err


def image_problem(uri: str) -> str | None:
    """Why the file at `uri` is not an image vidbatch takes (None when it is)."""
    try:
        size, head = _header(uri)
    except StorageError as err:
        return str(err)
    if size > MAX_IMAGE_BYTES:
        return f"the image is {size / (1 << 20):.1f} MiB; at most {MAX_IMAGE_BYTES >> 20} MiB"
    from PIL import Image, UnidentifiedImageError  # lazy: only catalogs with images pay for it

    try:
        with Image.open(io.BytesIO(head)) as image:
            fmt, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return "not an image (PNG, JPEG or WebP)"
    if fmt not in IMAGE_FORMATS or not width or not height:
        return f"a {fmt} image; PNG, JPEG or WebP wanted"
    return None


def reference_name(uri: str) -> str:
    """The local file name of an item's image reference in its work folder (never the URI's own)."""
    suffix = Path(urlparse(uri).path).suffix.lower()
    return "reference" + (suffix if suffix in (".png", ".jpg", ".jpeg", ".webp") else ".img")


def check_images(valid: pl.DataFrame, catalog: str, roots: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the valid rows with `image_source`, the resolved `image_uri`, rejects for the rows whose image is not allowed or
    not an image). Each distinct reference is resolved and read once."""
    if "image_uri" not in valid.columns or valid["image_uri"].null_count() == valid.height:
        return valid, pl.DataFrame(schema=REJECTS_SCHEMA)
    resolved, why = {}, {}
    for uri in valid["image_uri"].drop_nulls().unique().to_list():
        target, refused = resolve_image(uri, catalog, roots)
        resolved[uri], why[uri] = target, refused if target is None else image_problem(target)
    image = pl.col("image_uri")
    reason = image.replace_strict(why, default=None, return_dtype=pl.String)
    rejects = (
        valid.filter(reason.is_not_null())
        .select(
            "row",
            printable(pl.col("item_id"), 200).alias("item_id"),
            pl.lit("image_uri").alias("column"),
            printable(image, 200).alias("value"),
            reason.alias("reason"),
        )
        .cast(pl.Schema(REJECTS_SCHEMA))
    )
    # The catalog's own reference stays (it is part of the item's fingerprint); `image_source` is read.
    kept = valid.filter(reason.is_null()).with_columns(
        image.replace_strict(resolved, default=None, return_dtype=pl.String).alias("image_source")
    )
    return kept, rejects


def check_catalog(
    raw: pl.DataFrame, catalog: str, routes: list[str] | None, loras: list[str] | None, roots: tuple[str, ...] = ()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A raw catalog's (valid rows, rejects): every row rule (catalog.validate_catalog), then every
    image reference of the rows still valid (`check_images`); rejects in row order."""
    valid, rejects = validate_catalog(raw, routes, loras)
    valid, bad_images = check_images(valid, catalog, roots)
    if bad_images.height:
        rejects = pl.concat([rejects, bad_images]).sort("row", maintain_order=True)
    return valid, rejects
