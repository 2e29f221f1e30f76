"""ACLED deletion lists: `event_id_cnty,deleted_timestamp`, the events ACLED has withdrawn.

ACLED publishes the ids of deleted events with the Unix time of their deletion (its deletions
API, `deleted/read.csv`; `acled_deletions_api` in the official R client). Ingesting such a list
removes those events from the database; the store remembers each deletion in the incident history
(`Store.ingest`), so an older export delivered later cannot bring a deleted event back unless its
row is a newer revision (ACLED `timestamp` after the deletion).
"""

from __future__ import annotations

from monitor.sources._csv import RowError, Table, batches, whole
from monitor.types import Deletion, FileStream

REQUIRED = ("event_id_cnty", "deleted_timestamp")
#: Deletions apply to the events of this source (ACLED's).
SOURCE = "acled"


def is_deletions(lower: set[str]) -> bool:
    """A deletion list: ACLED's event id and a deletion time, and no event date (not an event export)."""
    return set(REQUIRED) <= lower and "event_date" not in lower


def parse(table: Table) -> FileStream:
    return deletion_list(table, fmt="acled-deletions", source=SOURCE, columns=REQUIRED, id_column="event_id_cnty",
                         when_column="deleted_timestamp", what="a deleted ACLED event")  # fmt: skip


def deletion_list(table: Table, *, fmt: str, source: str, columns: tuple[str, ...], id_column: str, when_column: str,
                  what: str) -> FileStream:  # fmt: skip
    """A list of events to delete from `source`: their ids and the Unix time of each deletion (its revision),
    one per row; a row without an id or with a time that is no whole number is rejected, a repeated id too."""
    col = table.index(columns, fmt=fmt, required=columns)
    name = {c: table.header[i] for c, i in col.items()}

    def convert(row: list[str]) -> Deletion:
        event = row[col[id_column]].strip()
        if not event:
            raise RowError(f"{name[id_column]} is empty (expected the id of {what})")
        return Deletion(source, event, str(whole(row[col[when_column]], name[when_column])))

    parts = batches(table, convert, key=lambda d: d.source_id, key_label=lambda d: f"deletion of {d.source_id!r}")
    return FileStream(table.path, fmt, source, table.encoding, "deletions", parts, table.header_line, close=table.close)
