"""UCDP Candidate events a GED release left out: `ucdp_candidate_id,replaced_by_version,replaced_at`.

UCDP's Candidate events are preliminary; the yearly GED release that covers their period replaces
them. Event ids stay the same, so the release's rows replace the Candidate rows one for one; the
Candidate events it left out (found not to be events, or merged) must go too, or they would be
counted beside the release. `monitor fetch` writes this list after it ingests a GED release
(`monitor.fetch._replace_candidates`); ingesting it deletes those events, and the incident history
remembers each (`replaced_at`, Unix seconds, is the deletion's revision), so a Candidate version
fetched again later cannot bring one back.
"""

from __future__ import annotations

from monitor.sources._csv import RowError, Table, batches, whole
from monitor.types import Deletion, FileStream

REQUIRED = ("ucdp_candidate_id", "replaced_by_version", "replaced_at")
SOURCE = "ucdp"


def is_replaced(lower: set[str]) -> bool:
    return set(REQUIRED) <= lower


def parse(table: Table) -> FileStream:
    col = table.index(REQUIRED, fmt="ucdp-replaced", required=REQUIRED)
    name = {c: table.header[i] for c, i in col.items()}

    def convert(row: list[str]) -> Deletion:
        event = row[col["ucdp_candidate_id"]].strip()
        if not event:
            raise RowError(f"{name['ucdp_candidate_id']} is empty (expected the id of a UCDP Candidate event)")
        return Deletion(SOURCE, event, str(whole(row[col["replaced_at"]], name["replaced_at"])))

    parts = batches(table, convert, key=lambda d: d.source_id, key_label=lambda d: f"replaced event {d.source_id!r}")
    return FileStream(table.path, "ucdp-replaced", SOURCE, table.encoding, "deletions", parts, table.header_line,
                      close=table.close)  # fmt: skip
