"""What an import reads: a file, a directory (its files, recursively), a
glob, or an object-store prefix (``s3://bucket/prefix``, through the
configured S3 endpoint: each object is downloaded when its turn comes)."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["ndjson", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("ndjson", "csv", "parquet")
EXTENSIONS: dict[str, Format] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class SourceError(ValueError):
    """The source names nothing readable (no such file, no known format)."""


@dataclass(frozen=True)
class SourceFile:
    name: str  # as the operator knows it: a path or s3://bucket/key
    size: int
    fmt: Format
    identity: str  # name, size and version: the same file imported again is recognised
    local: Path | None = None  # None: an object not downloaded yet
    bucket: str | None = None
    key: str | None = None


def format_of(name: str, forced: str | None = None) -> Format | None:
    if forced:
        if forced not in FORMATS:
            raise SourceError(f"--format must be one of {', '.join(FORMATS)}")
        return forced  # type: ignore[return-value]
    base = name[:-3] if name.endswith(".gz") else name
    return EXTENSIONS.get(os.path.splitext(base)[1].lower())


def _identity(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _local(path: Path, forced: str | None) -> SourceFile | None:
    fmt = format_of(path.name, forced)
    if fmt is None:
        return None
    st = path.stat()
    name = str(path.resolve())
    return SourceFile(name, st.st_size, fmt, _identity(name, st.st_size, st.st_mtime_ns), path)


def resolve(source: str, forced: str | None = None, s3: S3Reader | None = None) -> list[SourceFile]:
    """The files of ``source`` in name order; SourceError when there are none."""
    if source.startswith("s3://"):
        if s3 is None:
            raise SourceError("s3:// sources need S3_ENDPOINT (the configured object store)")
        files = s3.list(source, forced)
    else:
        path = Path(source)
        if path.is_file():
            one = _local(path, forced)
            if one is None:
                raise SourceError(
                    f"{source}: unknown format; name it .ndjson/.jsonl/.csv/.parquet "
                    "(optionally .gz) or pass --format"
                )
            files = [one]
        else:
            names = (
                (str(p) for p in path.rglob("*"))
                if path.is_dir()
                else glob.iglob(source, recursive=True)
            )
            found = (_local(Path(n), forced) for n in names if Path(n).is_file())
            files = sorted((f for f in found if f is not None), key=lambda f: f.name)
    if not files:
        raise SourceError(f"{source}: no file to import (formats: {', '.join(FORMATS)})")
    return files


class S3Reader:
    """Objects under a prefix of the configured S3 endpoint (boto3)."""

    def __init__(self, endpoint: str, region: str, download_dir: Path) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        self.download_dir = download_dir

    def list(self, url: str, forced: str | None) -> list[SourceFile]:
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise SourceError(f"{url}: expected s3://bucket/prefix")
        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    fmt = format_of(key, forced)
                    if fmt is None or key.endswith("/"):
                        continue
                    name = f"s3://{bucket}/{key}"
                    ident = _identity(name, obj["Size"], obj.get("ETag", ""))
                    out.append(SourceFile(name, obj["Size"], fmt, ident, None, bucket, key))
        except Exception as exc:  # no such bucket, endpoint down: the operator's to fix
            raise SourceError(f"{url}: {exc}") from exc
        return sorted(out, key=lambda f: f.name)

    def fetch(self, f: SourceFile) -> Path:
        self.download_dir.mkdir(parents=True, exist_ok=True)
        suffix = f.key.rsplit("/", 1)[-1] if f.key else "object"
        target = self.download_dir / f"{f.identity}-{suffix}"
        if not target.exists() or target.stat().st_size != f.size:
            tmp = target.with_suffix(target.suffix + ".part")
            self.client.download_file(f.bucket, f.key, str(tmp))
            tmp.replace(target)
        return target


def local_path(f: SourceFile, s3: S3Reader | None) -> Path:
    if f.local is not None:
        return f.local
    if s3 is None:
        raise SourceError(f"{f.name}: no object store configured")
    return s3.fetch(f)
