"""Published Avro schema versions are locked by fingerprint
(``schemas/avro/schemas.lock.json``): CI fails when one is edited in place."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from schemas import lock
from schemas.codec import AVRO_DIR, latest


@pytest.fixture
def avro_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(AVRO_DIR, tmp_path / "avro"))


def _add_field(path: Path, name: str) -> None:
    raw = json.loads(path.read_text())
    raw["fields"].append({"name": name, "type": ["null", "string"], "default": None})
    path.write_text(json.dumps(raw, indent=2))


def test_every_published_version_matches_the_lock():
    assert lock.check() == []
    assert set(lock.read_lock()) >= {"event.v1.avsc", "event.v2.avsc", "reports_ready.v1.avsc"}


def test_editing_v2_in_place_fails_and_lock_does_not_paper_over_it(avro_dir):
    _add_field(avro_dir / "event.v2.avsc", "team_id")
    problems = lock.check(avro_dir)
    assert [p.schema for p in problems] == ["event.v2.avsc"]
    assert "immutable" in problems[0].reason and "new version" in problems[0].reason
    assert lock.lock(avro_dir) == []  # re-locking never rewrites a published entry
    assert [p.schema for p in lock.check(avro_dir)] == ["event.v2.avsc"]


def test_doc_only_edits_keep_the_fingerprint(avro_dir):
    path = avro_dir / "event.v2.avsc"
    raw = json.loads(path.read_text())
    raw["doc"] = "reworded documentation"
    path.write_text(json.dumps(raw))
    assert lock.check(avro_dir) == []


def test_a_new_field_goes_through_a_new_version(avro_dir):
    newest = latest().version
    nxt = avro_dir / f"event.v{newest + 1}.avsc"
    shutil.copy(avro_dir / f"event.v{newest}.avsc", nxt)
    _add_field(nxt, "team_id")
    assert [(p.schema, "not in the lock" in p.reason) for p in lock.check(avro_dir)] == [
        (nxt.name, True)
    ]
    assert lock.lock(avro_dir) == [nxt.name]
    assert lock.check(avro_dir) == []


def test_a_published_version_cannot_be_deleted(avro_dir):
    (avro_dir / "event.v1.avsc").unlink()
    assert [p.schema for p in lock.check(avro_dir)] == ["event.v1.avsc"]


@pytest.mark.stack
def test_the_cli_check_is_clean_on_the_repository():
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "schemas", "check"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("0 problem(s)")
