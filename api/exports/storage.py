"""Where export files live: S3 (or MinIO) through boto3, or a local directory.

``S3_ENDPOINT`` set: a bucket on that endpoint; links are S3 presigned GETs.
Unset (the default, no extra service): files under ``EXPORTS_DIR`` and links
to the API's own ``/v1/exports/files/{key}`` carrying an HMAC signature over
key and expiry, which the route checks — the same contract as a presigned
URL (a bearer link that stops working at its expiry), served by the process
that already runs.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from core.settings import Settings


class ObjectStore(Protocol):
    kind: str

    def put_file(self, key: str, path: Path, content_type: str) -> int: ...

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def presign(self, key: str, ttl_s: int) -> str: ...

    def keys(self) -> Iterator[str]: ...


PART_BYTES = 8 * 2**20  # S3 parts: at least 5 MB each but the last


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class S3ObjectStore:
    kind = "s3"

    def __init__(self, endpoint: str, bucket: str, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        # Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID, profile, role).
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        try:
            self.client.head_bucket(Bucket=bucket)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=bucket)

    def put_file(self, key: str, path: Path, content_type: str) -> int:
        # upload_file streams the file in parts: memory stays flat for large exports.
        self.client.upload_file(
            str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
        )
        return path.stat().st_size

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """A multipart upload, one part per ``PART_BYTES`` of the stream; no
        object under the key unless every part arrived."""
        up = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        parts: list[dict] = []
        size = 0
        try:
            for body in _parts(chunks, PART_BYTES):
                n = len(parts) + 1
                got = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body
                )
                parts.append({"PartNumber": n, "ETag": got["ETag"]})
                size += len(body)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=up["UploadId"],
                MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=up["UploadId"])
            raise
        return size

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except self.client.exceptions.ClientError:
            return False

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def keys(self) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def presign(self, key: str, ttl_s: int) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=max(1, ttl_s)
        )


class LocalObjectStore:
    kind = "local"

    def __init__(self, root: Path, secret: str) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret = secret.encode()

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError("key outside the store")
        return p

    def put_file(self, key: str, path: Path, content_type: str) -> int:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        shutil.copyfile(path, tmp)
        tmp.replace(dest)  # never a half-written object under the key
        return dest.stat().st_size

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        try:
            with tmp.open("wb") as f:
                for chunk in chunks:
                    f.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dest)  # never a half-written object under the key
        return dest.stat().st_size

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        for p in self.root.rglob("*"):
            if p.is_file() and not p.name.endswith(".part"):
                yield p.relative_to(self.root).as_posix()

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def check(self, key: str, expires: int, sig: str) -> bool:
        good = hmac.compare_digest(self.signature(key, expires), sig)
        return good and expires > time.time()

    def presign(self, key: str, ttl_s: int) -> str:
        expires = int(time.time() + max(1, ttl_s))
        sig = self.signature(key, expires)
        # Relative to the API; the route answering with it makes it absolute.
        return f"/v1/exports/files/{quote(key)}?expires={expires}&sig={sig}"


def object_store_for(settings: Settings, secret: str) -> ObjectStore:
    if settings.s3_endpoint:
        return S3ObjectStore(settings.s3_endpoint, settings.s3_bucket, settings.s3_region)
    return LocalObjectStore(settings.export_path, secret)
