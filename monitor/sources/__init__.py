"""Read incident files: detect the format from the header, normalise rows, keep rejects.

Neither function touches the database. `open_file` checks the file and its header and
returns a `FileStream` that parses the rows in batches as the store writes them;
`read_file` reads a whole file into a `ParsedFile` (incidents or count rows plus rejected
rows with the physical line they start on and why). Both raise `IngestError` with one
line `FILE: line N: problem (what would be accepted)` when the file cannot be read at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.errors import IngestError
from monitor.formats import FORMATS
from monitor.sources import acled, aggregated, counts, deletions, generic, replaced, ucdp
from monitor.sources._csv import fail, is_xlsx, open_table, xlsx_table
from monitor.types import FileStream, ParsedFile


__all__ = ["FORMATS", "detect_format", "open_file", "read_file"]


def _detect(header: list[str], mappings: Sequence[Any]) -> tuple[str | None, Any]:
    lower = {h.lower() for h in header if h}
    for mapping in mappings:  # a configured mapping wins: the user said what this header means
        if generic.matches(mapping, header):
            return "generic", mapping
    if counts.is_counts(lower):
        return "counts", None
    if deletions.is_deletions(lower):
        return "acled-deletions", None
    if replaced.is_replaced(lower):
        return "ucdp-replaced", None
    if aggregated.is_aggregated(lower):
        return "acled-aggregated", None
    if "event_id_cnty" in lower:
        return ("acled-legacy" if acled.is_legacy(header) else "acled"), None
    if ucdp.is_ucdp(lower):
        return "ucdp", None
    return None, None


def _accepted(mappings: Sequence[Any]) -> str:
    parts = [
        f"acled ({', '.join(acled.REQUIRED)}, ...)",
        f"acled-legacy ({', '.join(c.upper() for c in acled.REQUIRED)}, ...)",
        f"ucdp ({', '.join(ucdp.REQUIRED)}, ...)",
        "counts (week_start, [country, admin1, admin2, event_type, sub_event_type, actor,] count[, fatalities])",
        f"acled-deletions ({', '.join(deletions.REQUIRED)})",
        f"acled-aggregated ({', '.join(c.upper() for c in aggregated.REQUIRED)}, ...; CSV or .xlsx)",
        f"ucdp-replaced ({', '.join(replaced.REQUIRED)})",
    ]
    parts += [f"generic mapping {m.name!r} ({','.join(m.match_header)})" for m in mappings]
    return "; ".join(parts)


def _unknown(header: list[str], mappings: Sequence[Any]) -> str:
    shown = ",".join(header)
    if len(shown) > 200:
        shown = shown[:200] + "…"
    sep = next((s for s in (";", "\t", "|") if len(header) == 1 and s in header[0]), "")
    if sep:
        return f"header '{shown}' is separated by {sep!r}, not by commas (save the file as comma-separated CSV)"
    return f"header '{shown}' matches no known format (accepted: {_accepted(mappings)})"


def detect_format(header: list[str], mappings: Sequence[Any] = ()) -> str:
    """The format of a file with this header: acled, acled-legacy, ucdp, counts or generic.

    header: the file's column names; mappings: configured generic mappings (objects with
        name, match_header, ...). Raises IngestError when no format matches.
    """
    fmt, _ = _detect([h.strip().lstrip("\ufeff") for h in header], mappings)
    if fmt is None:
        raise IngestError(_unknown(header, mappings))
    return fmt


def open_file(
    path: Path | str, *, format: str = "auto", mappings: Sequence[Any] = (), now: datetime, read_from: Path | str | None = None,
    week_start: str = "monday",
) -> FileStream:
    """Check one incident file and read its header; its rows are parsed as the stream is read.

    format: auto (from the header), acled, acled-legacy, acled-deletions, ucdp, generic, counts, or the
        name of a generic mapping. mappings: generic column mappings (GenericMapping).
    now: the ingest time; events dated after it are rejected. Close the stream (or read
    it to the end) to close the file. read_from: a copy of the file to read instead (the
    file named in messages and the ingest log stays `path`): monitor.pipeline parses the
    spooled copy whose bytes it hashed. week_start: the configured first day of the week
    (`week.start`); a counts row dated on another day is rejected.
    """
    path = Path(path)
    try:
        if path.is_dir() and read_from is None:
            raise IngestError(f"{path}: is a folder, not a file (name the files in it, e.g. {path / '*.csv'})")
        source = Path(read_from) if read_from is not None else path
        table = open_table(source, name=path) if not is_xlsx(source) else xlsx_table(source, name=path)
    except OSError as exc:
        raise IngestError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        return _parse(table, path, format, mappings, now, week_start)
    except BaseException:
        table.close()
        raise


def _parse(table, path: Path, format: str, mappings: Sequence[Any], now: datetime, week_start: str) -> FileStream:
    line = table.header_line
    mapping = None
    if format == "auto":
        fmt, mapping = _detect(table.header, mappings)
        if fmt is None:
            raise fail(path, line, _unknown(table.header, mappings))
    elif format == "generic":
        fmt, mapping = "generic", generic.choose(mappings, table.header, path=path, line=line)
    elif format in FORMATS:
        fmt = format
    elif any(m.name == format for m in mappings):
        fmt, mapping = "generic", generic.choose(mappings, table.header, path=path, line=line, name=format)
    else:
        names = [*FORMATS, *(m.name for m in mappings)]
        raise IngestError(f"{path}: format {format!r} is unknown (expected one of: {', '.join(names)})")

    if table.not_utf8 is not None and fmt != "acled-legacy":
        bad_line, byte = table.not_utf8
        raise fail(path, bad_line, f"byte {byte} is not UTF-8 text (save the file as UTF-8; only legacy ACLED files may be cp1252)")

    if fmt == "acled":
        return acled.parse(table, now=now, legacy=False)
    if fmt == "acled-legacy":
        return acled.parse(table, now=now, legacy=True)
    if fmt == "ucdp":
        return ucdp.parse(table, now=now)
    if fmt == "acled-deletions":
        return deletions.parse(table)
    if fmt == "ucdp-replaced":
        return replaced.parse(table)
    if fmt == "counts":
        return counts.parse(table, now=now, week_start=week_start)
    if fmt == "acled-aggregated":
        return aggregated.parse(table, now=now, week_start=week_start)
    return generic.parse(table, now=now, mapping=mapping)


def read_file(
    path: Path | str, *, format: str = "auto", mappings: Sequence[Any] = (), now: datetime, week_start: str = "monday"
) -> ParsedFile:
    """Read one incident file whole into a ParsedFile; rows that cannot be used become rejects.

    Arguments as for `open_file`. For files of any size, give `open_file`'s stream to
    `Store.ingest` instead: it never holds more than one batch.
    """
    stream = open_file(path, format=format, mappings=mappings, now=now, week_start=week_start)
    items: list = []
    rejects: list = []
    for batch, bad in stream:
        items.extend(batch)
        rejects.extend(bad)
    kinds = {kind: tuple(items) if stream.kind == kind else () for kind in ("incidents", "counts", "deletions")}
    return ParsedFile(stream.path, stream.format, stream.source, stream.encoding, stream.rows_read, kinds["incidents"],
                      kinds["counts"], tuple(rejects), kinds["deletions"])  # fmt: skip
