"""The boto3 object store against a real S3-compatible endpoint on loopback
(moto's server mode), and the local default's signed links."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from api.exports.storage import LocalObjectStore, S3ObjectStore
from ops.kafka_launcher import free_port


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_store_roundtrip_presign_and_delete(s3_endpoint, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    objects = S3ObjectStore(s3_endpoint, "exports-test", "us-east-1")
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    assert objects.put_file("t1/ex_1.csv", src, "text/csv") == src.stat().st_size
    assert objects.exists("t1/ex_1.csv") and list(objects.keys()) == ["t1/ex_1.csv"]
    url = objects.presign("t1/ex_1.csv", 60)
    assert "X-Amz-Signature" in url
    r = httpx.get(url)
    assert r.status_code == 200 and r.text == "a,b\n1,2\n"
    objects.delete("t1/ex_1.csv")
    assert not objects.exists("t1/ex_1.csv")
    assert httpx.get(url).status_code == 404  # no orphan: the link leads nowhere


def test_local_store_links_are_signed_and_expire(tmp_path: Path):
    objects = LocalObjectStore(tmp_path / "objs", "secret")
    src = tmp_path / "x.csv"
    src.write_text("x")
    objects.put_file("t1/ex_2.csv", src, "text/csv")
    link = objects.presign("t1/ex_2.csv", 1)
    q = dict(p.split("=") for p in link.split("?")[1].split("&"))
    assert objects.check("t1/ex_2.csv", int(q["expires"]), q["sig"])
    assert not objects.check("t1/ex_3.csv", int(q["expires"]), q["sig"])  # other key
    assert not objects.check("t1/ex_2.csv", int(q["expires"]) + 60, q["sig"])  # longer life
    time.sleep(1.1)
    assert not objects.check("t1/ex_2.csv", int(q["expires"]), q["sig"])
    with pytest.raises(ValueError):
        objects.path("../escape.csv")


def _blocks(n: int, size: int):
    for i in range(n):
        yield bytes([65 + i % 26]) * size


@pytest.mark.parametrize("kind", ["s3", "local"])
def test_streamed_objects_arrive_whole_or_not_at_all(s3_endpoint, tmp_path, monkeypatch, kind):
    """``put_stream`` (ClickHouse's CSV blocks): several S3 parts, or a local
    file renamed when complete; a stream that fails leaves no object."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    objects = (
        S3ObjectStore(s3_endpoint, f"stream-{kind}", "us-east-1")
        if kind == "s3"
        else LocalObjectStore(tmp_path / "objs", "secret")
    )
    size = objects.put_stream("t1/big.csv", _blocks(20, 1_000_000), "text/csv")  # 3 S3 parts
    assert size == 20_000_000 and objects.exists("t1/big.csv")
    if kind == "s3":
        got = httpx.get(objects.presign("t1/big.csv", 60)).content
    else:
        got = objects.path("t1/big.csv").read_bytes()
    assert got == b"".join(_blocks(20, 1_000_000))

    def broken():
        yield from _blocks(10, 1_000_000)
        raise RuntimeError("ClickHouse went away")

    with pytest.raises(RuntimeError):
        objects.put_stream("t1/half.csv", broken(), "text/csv")
    assert not objects.exists("t1/half.csv")
    assert list(objects.keys()) == ["t1/big.csv"]
