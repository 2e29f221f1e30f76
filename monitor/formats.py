"""The input formats `monitor ingest --format` and `[ingest] format` accept, in a module of their own so that the
command line can list them without importing the readers (pandas) just to print its help."""

#: Formats `monitor.sources.read_file` accepts; "auto" detects one of the others from the header.
FORMATS: tuple[str, ...] = ("auto", "acled", "acled-legacy", "acled-deletions", "acled-aggregated", "ucdp", "ucdp-replaced",
                            "generic", "counts")  # fmt: skip

#: Public pages of single records, by source (the `source` column of an incident): UCDP GED shows each event at
#: https://ucdp.uu.se/event/<id>. ACLED has no public page per event, so its records stay unlinked. UCDP
#: Candidate events (preliminary, from the API) share the source and the id scheme but may have no page until a
#: GED release includes them.
RECORD_PAGES: dict[str, str] = {"ucdp": "https://ucdp.uu.se/event/{id}"}


def record_url(source: object, source_id: object) -> str:
    """The public address of one record, or "" when its source has no such page or its id is not a plain ASCII
    number (1 to 18 digits). The address is built from that number alone, never from other text of the data, so a
    hostile id cannot make a link anywhere else."""
    import re

    pattern = RECORD_PAGES.get(source) if isinstance(source, str) else None
    if isinstance(source_id, int) and not isinstance(source_id, bool) and source_id >= 0:
        source_id = str(source_id)
    if pattern is None or not isinstance(source_id, str) or not re.fullmatch(r"[0-9]{1,18}", source_id):
        return ""
    return pattern.format(id=source_id)
