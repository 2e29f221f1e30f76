"""Read incident files: detect the format from the header, normalise rows, keep rejects.

`read_file` never touches the database: it returns a `ParsedFile` (incidents or count
rows plus rejected rows with the physical line they start on and why), or raises
`IngestError` with one line `FILE: line N: problem (what would be accepted)` when the
file cannot be read at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.errors import IngestError
from monitor.sources import acled, counts, generic, ucdp
from monitor.sources._csv import fail, open_table

#: Formats `read_file` accepts; "auto" detects one of the others from the header.
FORMATS: tuple[str, ...] = ("auto", "acled", "acled-legacy", "ucdp", "generic", "counts")

__all__ = ["FORMATS", "detect_format", "read_file"]


def _detect(header: list[str], mappings: Sequence[Any]) -> tuple[str | None, Any]:
    lower = {h.lower() for h in header if h}
    for mapping in mappings:  # a configured mapping wins: the user said what this header means
        if generic.matches(mapping, header):
            return "generic", mapping
    if counts.is_counts(lower):
        return "counts", None
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


def read_file(path: Path | str, *, format: str = "auto", mappings: Sequence[Any] = (), now: datetime):
    """Read one incident file into a ParsedFile; rows that cannot be used become rejects.

    format: auto (from the header), acled, acled-legacy, ucdp, generic, counts, or the
        name of a generic mapping. mappings: generic column mappings (GenericMapping).
    now: the ingest time; events dated after it are rejected.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    table = open_table(path, data)
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
        parsed = acled.parse(table, now=now, legacy=False)
    elif fmt == "acled-legacy":
        parsed = acled.parse(table, now=now, legacy=True)
    elif fmt == "ucdp":
        parsed = ucdp.parse(table, now=now)
    elif fmt == "counts":
        parsed = counts.parse(table, now=now)
    else:
        parsed = generic.parse(table, now=now, mapping=mapping)

    if parsed.rows_read == 0:
        raise fail(path, line + 1, f"no data rows after the header (expected at least one {fmt} record)")
    return parsed
