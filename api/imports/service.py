"""Imports over HTTP (``POST /v1/imports``): the same Importer as the CLI,
run on a thread of the API process, its progress in the same state files
``GET /v1/imports/{id}`` reads. Sources: an object-store prefix, or a file
uploaded to the API (kept under the run directory until the import ends)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from api.imports.readers import load_mapping
from api.imports.run import ImportAborted, Importer, KafkaOut, Target
from api.imports.sources import S3Reader, resolve
from api.imports.state import ImportState, StateStore, import_id
from core.settings import Settings

log = logging.getLogger("skillstream.import")


def states(settings: Settings) -> StateStore:
    return StateStore(settings.run_dir / "imports")


def s3_reader(settings: Settings) -> S3Reader | None:
    if not settings.s3_endpoint:
        return None
    return S3Reader(settings.s3_endpoint, settings.s3_region, settings.run_dir / "imports" / "s3")


def start(
    settings: Settings,
    bootstrap: str,
    target: Target,
    source: str,
    fmt: str | None = None,
    mapping: Path | None = None,
) -> ImportState:
    """Resolve the source (SourceError: nothing to read), then run the import
    on a thread; a finished import of the same files is answered as it is."""
    s3 = s3_reader(settings) if source.startswith("s3://") else None
    files = resolve(source, fmt, s3)
    store = states(settings)
    iid = import_id(target.tenant_id, [f.identity for f in files])
    st = store.load(iid)
    if st is not None and st.status == "done":
        return st
    lock = store.lock(iid)  # ImportBusy: running already
    st = st or ImportState(iid, target.tenant_id, target.name, source)
    st.status = "running"
    store.save(st)
    imp = Importer(settings, target, files, st, store, out=None,
                   mapping=load_mapping(mapping), s3=s3)  # fmt: skip

    def run() -> None:
        try:
            imp.out = KafkaOut(bootstrap, settings.topic("events.import"))
            imp.send_all()
            imp.finish(wait_s=3600)
        except (ImportAborted, Exception) as exc:  # kept on the import for GET to show
            log.warning("import %s stopped: %s", iid, exc)
            st.status, st.error = "failed", str(exc)[:1000]
            store.save(st)
        finally:
            lock.close()

    threading.Thread(target=run, name=f"import-{iid}", daemon=True).start()
    return st
