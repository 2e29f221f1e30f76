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
    col = table.index(REQUIRED, fmt="acled-deletions", required=REQUIRED)
    name = {c: table.header[i] for c, i in col.items()}

    def convert(row: list[str]) -> Deletion:
        event = row[col["event_id_cnty"]].strip()
        if not event:
            raise RowError(f"{name['event_id_cnty']} is empty (expected the id of a deleted ACLED event)")
        return Deletion(SOURCE, event, str(whole(row[col["deleted_timestamp"]], name["deleted_timestamp"])))

    parts = batches(table, convert, key=lambda d: d.source_id, key_label=lambda d: f"deletion of {d.source_id!r}")
    return FileStream(table.path, "acled-deletions", SOURCE, table.encoding, "deletions", parts, table.header_line,
                      close=table.close)  # fmt: skip
