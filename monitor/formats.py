"""The input formats `monitor ingest --format` and `[ingest] format` accept, in a module of their own so that the
command line can list them without importing the readers (pandas) just to print its help."""

#: Formats `monitor.sources.read_file` accepts; "auto" detects one of the others from the header.
FORMATS: tuple[str, ...] = ("auto", "acled", "acled-legacy", "acled-deletions", "acled-aggregated", "ucdp", "ucdp-replaced",
                            "generic", "counts")  # fmt: skip
