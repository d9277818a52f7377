"""A file → its events, one ``Row`` each: the row's number in the file (the
line number for NDJSON, and for CSV when no quoted field spans lines; the
row for Parquet), the event in the batch endpoint's shape, or why the row
could not be read. Nothing here validates an event (run.py does, as the
front door does).

Parsing is the libraries': orjson for each NDJSON line (gzip by the
standard library), pyarrow's streaming CSV reader, and Parquet row groups
by pyarrow; a file is read in blocks, never whole.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from api.ingest.validate import shape
from schemas import dictionary


@dataclass(frozen=True)
class Row:
    number: int
    event: dict | None
    error: str | None = None


Mapping = dict[str, str]  # column in the file -> field of the event (``properties.x`` too)
Position = Callable[[], int]  # bytes of the file read so far


class ReadError(ValueError):
    """The file cannot be read at all (not its format, corrupt)."""


def load_mapping(path: str | Path | None) -> Mapping:
    """A JSON object: {"column in the file": "event field"}; a target
    ``properties.NAME`` puts the value into the event's properties."""
    if path is None:
        return {}
    try:
        mapping = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ReadError(f"mapping {path}: {exc}") from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ReadError(f'mapping {path}: expected {{"column": "field", ...}}')
    return mapping


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


# --- NDJSON ----------------------------------------------------------------------------
def ndjson(path: Path, skip: int = 0) -> tuple[Iterator[Row], Position]:
    raw = open(path, "rb")  # noqa: SIM115 (closed when the rows end)
    stream = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw

    def rows() -> Iterator[Row]:
        try:
            for number, line in enumerate(stream, 1):
                if number <= skip or not line.strip():
                    continue
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield Row(number, None, f"not JSON: {exc}")
                    continue
                yield (
                    Row(number, event)
                    if isinstance(event, dict)
                    else Row(number, None, "event must be a JSON object")
                )
        except (OSError, EOFError) as exc:
            raise ReadError(f"{path}: {exc}") from exc
        finally:
            raw.close()

    return rows(), raw.tell


# --- columns (CSV, Parquet) -> events ---------------------------------------------------
_CORE_TYPES = {f.name: f for f in shape().core}


def _coerce(types: tuple[str, ...], logical: str | None, value: Any) -> Any:
    """A CSV cell (a string) as the field's type; a value that does not
    convert stays as it is, for the validator to name."""
    if not isinstance(value, str) or logical == "timestamp-millis":
        return value
    t = types[0] if types else "string"
    try:
        if t in ("int", "long"):
            return int(value)
        if t in ("double", "float"):
            return float(value)
        if t == "boolean":
            low = value.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
    except ValueError:
        pass
    return value


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items() if x is not None}
    return v


def event_from_columns(row: dict[str, Any], mapping: Mapping, cells_are_text: bool) -> dict:
    """One CSV or Parquet row as the batch endpoint's event: mapped names,
    ``properties.x`` columns (or a ``properties`` column of JSON or a
    struct) into ``properties``, empty cells absent, CSV text typed by the
    event's schema."""
    event: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for column, value in row.items():
        field = mapping.get(column, column)
        if value is None or value == "":
            continue
        if field == "properties":
            if isinstance(value, str):
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError:
                    event["properties"] = value  # the validator says it is not an object
                    continue
            if isinstance(value, dict):
                props.update({k: v for k, v in value.items() if v is not None})
            else:
                event["properties"] = value
            continue
        if field.startswith("properties."):
            props[field[len("properties.") :]] = value
        else:
            event[field] = value
    if cells_are_text:
        for name, value in event.items():
            f = _CORE_TYPES.get(name)
            if f is not None:
                event[name] = _coerce(f.types, f.logical, value)
        spec = dictionary.spec(event.get("event_name")) if "event_name" in event else None
        if spec is not None:
            fields = {f.name: f for f in shape().properties[spec.properties_record]}
            for name, value in props.items():
                f = fields.get(name)
                if f is not None:
                    props[name] = _coerce(f.types, f.logical, value)
    if props or "properties" not in event:
        event.setdefault("properties", {})
        if isinstance(event["properties"], dict):
            event["properties"].update(props)
    return {k: _json_value(v) for k, v in event.items()}


# --- CSV -------------------------------------------------------------------------------
def csv(path: Path, mapping: Mapping, skip: int = 0) -> tuple[Iterator[Row], Position]:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    source = pa.OSFile(str(path), "rb")
    stream = pa.CompressedInputStream(source, "gzip") if _is_gzip(path) else source
    try:
        # every column as text: types come from the event's schema, per row
        header = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 16))
        names = header.schema.names
    except pa.ArrowInvalid as exc:
        source.close()
        raise ReadError(f"{path}: {exc}") from exc
    source.close()
    source = pa.OSFile(str(path), "rb")
    stream = pa.CompressedInputStream(source, "gzip") if _is_gzip(path) else source
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=1 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False
        ),
    )

    def rows() -> Iterator[Row]:
        number = 1  # the header
        try:
            for batch in reader:
                for row in batch.to_pylist():
                    number += 1
                    if number - 1 <= skip:
                        continue
                    yield Row(number, event_from_columns(row, mapping, cells_are_text=True))
        except pa.ArrowInvalid as exc:
            # a row pyarrow cannot split (wrong number of columns): the rest of the file
            raise ReadError(f"{path}: after row {number}: {exc}") from exc
        finally:
            source.close()

    return rows(), source.tell


# --- Parquet ---------------------------------------------------------------------------
def parquet(path: Path, mapping: Mapping, skip: int = 0) -> tuple[Iterator[Row], Position]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReadError(f"{path}: {exc}") from exc
    total_rows = max(1, pf.metadata.num_rows)
    size = path.stat().st_size
    done = [0]

    def rows() -> Iterator[Row]:
        number = 0
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                number += 1
                done[0] = number
                if number <= skip:
                    continue
                yield Row(number, event_from_columns(row, mapping, cells_are_text=False))
        pf.close()

    return rows(), lambda: size * done[0] // total_rows


def open_rows(
    path: Path, fmt: str, mapping: Mapping, skip: int = 0
) -> tuple[Iterator[Row], Position]:
    """Rows past the first ``skip`` (a resumed import), and the bytes read so far."""
    if fmt == "ndjson":
        return ndjson(path, skip)
    if fmt == "csv":
        return csv(path, mapping, skip)
    return parquet(path, mapping, skip)
