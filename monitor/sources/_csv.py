"""Shared reading machinery: decode a file, split it into CSV records with the
physical line each record starts on, and turn field values into checked values.

Files are streamed: `open_table` checks the bytes in one pass (empty, binary, not
UTF-8), then reads the header; `batches` converts the records in batches of `BATCH`, so
a 2-million-row export never sits in memory whole. Every format module builds on
`Table` and `batches`. A problem with one row is a `RowError` (the row becomes a
`Reject`); a problem with the whole file is an `IngestError` with one line
`FILE: line N: problem (what would be accepted)`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from monitor.errors import IngestError
from monitor.types import Reject

#: Raw text kept with a reject is trimmed to this many characters.
RAW_LIMIT = 2000
#: Records converted (and written by the store) per batch.
BATCH = 20_000
#: Bytes read per step of the encoding check.
_BLOCK = 1 << 22

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_ISO_PREFIX = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T][0-9:.]*)?\Z")
_DMY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})\Z")
#: strptime formats that datetime.fromisoformat reads exactly, ten times faster.
_ISO_FORMATS = {
    "%Y-%m-%d": re.compile(r"\d{4}-\d{2}-\d{2}\Z"),
    "%Y-%m-%d %H:%M:%S": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z"),
    "%Y-%m-%dT%H:%M:%S": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\Z"),
    "%Y-%m-%d %H:%M": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}\Z"),
}


class RowError(Exception):
    """One row cannot be used; the message is the reject reason."""


def fail(path: Path, line: int, problem: str) -> IngestError:
    """The one-line error for a file that cannot be read at all."""
    return IngestError(f"{path}: line {line}: {problem}")


class _Lines:
    """The file's physical lines for csv.reader, remembering those of the current record
    (the raw text kept with a reject) and how many have been read."""

    __slots__ = ("handle", "held", "count")

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.held: list[str] = []
        self.count = 0

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        self.held.append(line)
        self.count += 1
        return line

    def take(self) -> list[str]:
        held, self.held = self.held, []
        return held


@dataclass
class Table:
    """A CSV file open for reading: its header and an iterator over its records."""

    path: Path
    encoding: str
    header: list[str]  # stripped column names as written
    header_line: int
    _lines: _Lines = field(repr=False)
    _reader: Iterator[list[str]] = field(repr=False)
    #: first bad byte when the text is not UTF-8 (decoded as cp1252 instead)
    not_utf8: tuple[int, str] | None = None
    _last: list[str] = field(default_factory=list, repr=False)

    @property
    def lower(self) -> list[str]:
        return [h.lower() for h in self.header]

    def index(self, names: Sequence[str], *, fmt: str, required: Sequence[str] = ()) -> dict[str, int]:
        """Column positions by case-insensitive name; missing required columns -> IngestError."""
        positions: dict[str, int] = {}
        for i, name in enumerate(self.lower):
            if name and name not in positions:
                positions[name] = i
        missing = [n for n in required if n.lower() not in positions]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise fail(
                self.path,
                self.header_line,
                f"missing required column{plural} {', '.join(repr(m) for m in missing)} for format {fmt} "
                f"(a {fmt} file needs: {', '.join(required)})",
            )
        return {n: positions[n.lower()] for n in names if n.lower() in positions}

    def raw(self) -> str:
        """The text of the record `records` yielded last, as written (trimmed to RAW_LIMIT)."""
        text = "".join(self._last).rstrip("\r\n")
        return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…"

    def records(self) -> Iterator[tuple[int, int, list[str] | None, str]]:
        """(first line, last line, fields or None when the CSV itself is broken, csv error) per record.

        Blank lines are skipped. Line numbers are physical: a quoted field holding a
        newline makes a record span several lines.
        """
        lines = self._lines
        previous = lines.count
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                now = lines.count
                self._last = lines.take()
                yield previous + 1, max(now, previous + 1), None, str(exc)
                previous = now
                continue
            now = lines.count
            start = previous + 1
            previous = now
            self._last = lines.take()
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield start, now, row, ""

    def close(self) -> None:
        self._lines.handle.close()


def _breaks(data: bytes, end: int | None = None) -> int:
    r"""Line breaks in data[:end] as the csv reader counts them (newline=""): \r\n, \r and \n."""
    part = data if end is None else data[:end]
    return part.count(b"\n") + part.count(b"\r") - part.count(b"\r\n")


def _cut(data: bytes) -> int:
    r"""Where to end a block: after its last line break (\n or \r, which no multi-byte UTF-8
    character contains), else, for a line longer than 16 blocks, at a character boundary."""
    cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    if cut or len(data) < 16 * _BLOCK:
        return cut
    i = len(data) - 1
    while i > len(data) - 4 and 0x80 <= data[i] < 0xC0:  # continuation bytes: find their lead byte
        i -= 1
    return i if data[i] >= 0xC0 else len(data)


def check_bytes(path: Path, *, name: Path | None = None) -> tuple[str, tuple[int, str] | None, bool]:
    """Encoding name, (line, byte) of the first non-UTF-8 byte (None when UTF-8) and whether a
    UTF-8 byte-order mark starts the file, read in blocks.

    Refuses an empty file, UTF-16, binary data (a NUL byte) and bytes that are neither
    UTF-8 nor Windows-1252, naming the line (counted as the csv reader counts them).
    Blocks are cut after a line break, so each block decodes on its own. `name`: the file
    messages name when `path` is a copy of it (default: path).
    """
    data_path, path = path, Path(name) if name is not None else path
    bad: tuple[int, str] | None = None
    content = False
    bom = False
    with open(data_path, "rb") as handle:
        line = 1  # line number of the piece's first byte
        carry = b""
        first = True
        split_crlf = False  # the previous piece ended with \r and this one may start with its \n
        while True:
            block = handle.read(_BLOCK)
            data = carry + block
            if not block:
                piece, carry = data, b""
            else:
                cut = _cut(data)
                if cut == 0:
                    carry = data
                    continue
                piece, carry = data[:cut], data[cut:]
            if first and piece:
                first = False
                if piece.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise fail(path, 1, "the file is UTF-16 text (a spreadsheet's 'Unicode text' export); save it as 'CSV UTF-8'")
                if piece.startswith(b"\xef\xbb\xbf"):
                    bom, piece = True, piece[3:]
            if split_crlf and piece.startswith(b"\n"):
                line -= 1  # that \r\n was counted once already, at the \r
            nul = piece.find(b"\x00")
            if nul >= 0:
                raise fail(path, line + _breaks(piece, nul),
                           "binary data (a NUL byte), not CSV text (expected a UTF-8 CSV file with a header row)")  # fmt: skip
            content = content or bool(piece.strip())
            if bad is None:
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = (line + _breaks(piece, exc.start), f"0x{piece[exc.start]:02X}")
            line += _breaks(piece)
            split_crlf = piece.endswith(b"\r")
            if not block:
                break
    if not content:
        raise fail(path, 1, "the file is empty (expected a CSV file with a header row)")
    if bad is None:
        return ("utf-8-sig" if bom else "utf-8"), None, bom
    # Legacy ACLED exports are Windows-1252; the caller refuses cp1252 for other formats.
    with open(data_path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            try:
                block.decode("cp1252")  # a single-byte code: any cut is safe
            except UnicodeDecodeError:
                raise fail(
                    path, bad[0], f"byte {bad[1]} is not UTF-8 text (save the file as UTF-8; legacy ACLED may be cp1252)"
                ) from None
    return "cp1252", bad, bom


def open_table(path: Path, *, name: Path | None = None) -> Table:
    """Check the file's bytes, open it and read its header row (the caller closes the Table).

    name: the file that messages, rejects and the ingest log name when `path` is a copy of it
    (monitor.pipeline reads a spooled copy; default: path).
    """
    encoding, not_utf8, bom = check_bytes(path, name=name)
    raw = open(path, "rb")
    path = Path(name) if name is not None else path
    if bom and encoding != "utf-8-sig":
        raw.read(3)  # a UTF-8 byte-order mark on a file that is cp1252 after it: not part of the header
    # newline="" splits on \r\n, \r and \n alike and keeps the endings, as the csv module expects.
    handle = io.TextIOWrapper(raw, encoding=encoding, newline="")
    try:
        lines = _Lines(handle)
        table = Table(path, encoding, [], 1, lines, csv.reader(lines), not_utf8)
        for start, _end, row, error in table.records():
            if row is None:
                raise fail(path, start, f"the header row is not valid CSV: {error}")
            table.header = [h.strip().lstrip("\ufeff") for h in row]
            table.header_line = start
            break
        else:
            raise fail(path, 1, "no header row (expected a CSV file with a header row)")
        named = [h for h in table.header if h]
        seen = Counter(h.lower() for h in named)  # one pass: a 20,000-column header takes milliseconds, not a minute
        dupes = sorted({h for h in named if seen[h.lower()] > 1})
        if dupes:
            raise fail(path, table.header_line, f"column {dupes[0]!r} appears more than once in the header (column names must be unique)")
    except BaseException:
        handle.close()
        raise
    return table


def batches(
    table: Table,
    convert: Callable[[list[str]], Any],
    *,
    key: Callable[[Any], str | None],
    key_label: Callable[[Any], str],
    size: int | None = None,
) -> Iterator[tuple[list[Any], list[Reject], int]]:
    """Convert every record; bad rows and later duplicates of a key become rejects.

    Yields (items, rejects, records read) per batch of about `size` records. A key seen
    earlier in the file, in any batch, makes a duplicate. `convert` raises RowError with
    the reason.
    """
    size = size or BATCH
    width = len(table.header)
    # rows may stop before trailing unnamed columns (legacy ACLED has seven of them)
    named_width = max((i + 1 for i, h in enumerate(table.header) if h), default=width)
    items: list[Any] = []
    rejects: list[Reject] = []
    first_line: dict[str, int] = {}
    rows = 0
    for start, end, row, error in table.records():
        if rows >= size:
            yield items, rejects, rows
            items, rejects, rows = [], [], 0
        rows += 1
        if row is None:
            rejects.append(Reject(start, f"not valid CSV: {error}", table.raw()))
            continue
        if len(row) != width:
            if len(row) > width and not any(v.strip() for v in row[width:]):
                row = row[:width]  # trailing empty fields (spreadsheet artefact)
            elif named_width <= len(row) < width:
                row = row + [""] * (width - len(row))
            else:
                span = f"; the record runs from line {start} to {end}: check for an unbalanced quote" if end > start else ""
                rejects.append(Reject(start, f"has {len(row)} fields, expected {width} as in the header{span}", table.raw()))
                continue
        try:
            item = convert(row)
        except RowError as exc:
            rejects.append(Reject(start, str(exc), table.raw()))
            continue
        k = key(item)
        if k is not None:
            seen = first_line.get(k)
            if seen is not None:
                rejects.append(
                    Reject(start, f"duplicate {key_label(item)} (first seen on line {seen}; the first is kept)", table.raw())
                )
                continue
            first_line[k] = start
        items.append(item)
    yield items, rejects, rows


class Dates:
    """Cached date parsing with reasons that name the column, the value and what is accepted."""

    def __init__(self, *, now: datetime, fmt: str = "iso") -> None:
        self.today = now.date()
        self.fmt = fmt
        self._cache: dict[str, date | str] = {}
        if fmt == "iso":
            self.expected = "YYYY-MM-DD"
        elif fmt == "iso-or-dmy":
            self.expected = "YYYY-MM-DD or DD/MM/YYYY"
        else:
            example = datetime(2023, 1, 31, 13, 45, 0).strftime(fmt)
            self.expected = f"date format {fmt!r}, e.g. {example}"

    def parse(self, value: str, column: str, *, future_ok: bool = False) -> date:
        got = self._cache.get(value)
        if got is None:
            got = self._parse(value.strip())
            if len(self._cache) < 100_000:  # date-times rarely repeat; keep memory bounded
                self._cache[value] = got
        if got == "empty":
            raise RowError(f"{column} is empty (expected {self.expected})")
        if got == "bad":
            raise RowError(f"{column} {value!r} is not a date (expected {self.expected})")
        if not future_ok and got > self.today:
            raise RowError(f"{column} {value!r} is after the ingest time ({self.today.isoformat()}): events cannot be in the future")
        return got

    def _parse(self, v: str) -> date | str:
        if not v:
            return "empty"
        try:
            if self.fmt == "iso":
                m = _ISO_PREFIX.match(v)
                return date.fromisoformat(m.group(1)) if m else "bad"
            if self.fmt == "iso-or-dmy":
                if _ISO.match(v):
                    return date.fromisoformat(v)
                m = _DMY.match(v)
                return date(int(m.group(3)), int(m.group(2)), int(m.group(1))) if m else "bad"
            fast = _ISO_FORMATS.get(self.fmt)
            if fast is not None:
                return datetime.fromisoformat(v).date() if fast.match(v) else "bad"
            return datetime.strptime(v, self.fmt).date()
        except ValueError:
            return "bad"


#: Largest whole number SQLite stores as an INTEGER (a signed 64-bit value); larger ones overflow.
WHOLE_MAX = 2**63 - 1


def whole(value: str, column: str, *, empty: int | None = None) -> int:
    """A whole number in 0..WHOLE_MAX (SQLite's 64-bit INTEGER); anything else is a RowError.

    `empty` is the value of an empty cell (None: empty is an error). "3", "3.0" and "3e2"
    are whole numbers; "nan", "inf", "1e400" and numbers above WHOLE_MAX are not.
    """
    v = value.strip()
    if v.isascii() and v.isdigit():
        number: int | float = int(v)
    elif not v:
        if empty is not None:
            return empty
        raise RowError(f"{column} is empty (expected a whole number >= 0)")
    else:
        try:
            number = float(v)
        except ValueError:
            raise RowError(f"{column} {value!r} is not a number (expected a whole number >= 0)") from None
        if math.isfinite(number) and number < 0:
            raise RowError(f"{column} {value!r} is negative (expected a whole number >= 0)")
        if math.isfinite(number) and not number.is_integer():
            raise RowError(f"{column} {value!r} is not a whole number (expected a whole number >= 0)")
    # NaN and ±inf fail the comparison; a float of 2**63 or more does not fit either
    if not 0 <= number <= WHOLE_MAX:
        raise RowError(f"{column} {value!r} is not a whole number >= 0 (expected 0..{WHOLE_MAX})")
    return int(number)


def coordinate(value: str, column: str, *, limit: float) -> float | None:
    """Decimal degrees within ±limit; None for an empty cell or a number that is no place.

    A non-finite or out-of-range number (nan, inf, 91, a swapped or sentinel value) keeps
    the event with no coordinate, because the event still counts in its admin areas;
    text that is not a number at all rejects the row (the columns are likely shifted).
    """
    v = value.strip()
    if not v:
        return None
    try:
        number = float(v)
    except ValueError:
        raise RowError(f"{column} {value!r} is not a number (expected decimal degrees between -{limit:g} and {limit:g})") from None
    if not -limit <= number <= limit:  # also false for NaN
        return None
    return number


#: The first bytes of a zip archive, which an .xlsx workbook is.
_ZIP = b"PK\x03\x04"


def is_xlsx(path: Path) -> bool:
    """Whether the file is a zip archive (an .xlsx workbook), whatever its name; False if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _ZIP
    except OSError:
        return False


def xlsx_table(path: Path, *, name: Path | None = None) -> Table:
    """The first worksheet of an .xlsx workbook that holds anything, as a Table: its rows written to a temporary CSV file
    (removed when the Table is closed) row for row, so a message's line N is the sheet's row N.
    Cells that hold dates are written as YYYY-MM-DD, whole numbers without a decimal point.
    IngestError naming the file when it is not a workbook openpyxl can read."""
    import tempfile
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    shown = name if name is not None else path
    try:  # opened as a file object: openpyxl would refuse the spooled copy's name, which is not *.xlsx
        book = load_workbook(open(path, "rb"), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as exc:
        raise fail(shown, 1, f"not a readable .xlsx workbook ({type(exc).__name__}: {exc}); save it as .xlsx or as CSV") from None
    fd, temp = tempfile.mkstemp(prefix="monitor-xlsx-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            sheet = _first_filled(book)
            for row in sheet.iter_rows(values_only=True) if sheet is not None else ():
                writer.writerow([_cell(v) for v in row])
        book.close()
        table = open_table(Path(temp), name=shown)
    except BaseException:
        os.unlink(temp)
        raise
    handle_close = table.close

    def close() -> None:
        handle_close()
        try:
            os.unlink(temp)
        except OSError:
            pass

    table.close = close  # type: ignore[method-assign]
    return table


def _first_filled(book) -> Any:
    """The first worksheet holding any value (a workbook may open with an empty or a notes sheet... of no rows)."""
    for sheet in book.worksheets:
        sheet.reset_dimensions()  # some exports carry a wrong "dimension" record: read every row there is
        for row in sheet.iter_rows(values_only=True):
            if any(v is not None and str(v).strip() for v in row):
                return sheet
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
