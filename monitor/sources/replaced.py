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

from monitor.sources._csv import Table
from monitor.sources.deletions import deletion_list
from monitor.types import FileStream

REQUIRED = ("ucdp_candidate_id", "replaced_by_version", "replaced_at")
SOURCE = "ucdp"


def is_replaced(lower: set[str]) -> bool:
    return set(REQUIRED) <= lower


def parse(table: Table) -> FileStream:
    return deletion_list(table, fmt="ucdp-replaced", source=SOURCE, columns=REQUIRED, id_column="ucdp_candidate_id",
                         when_column="replaced_at", what="a UCDP Candidate event")  # fmt: skip
