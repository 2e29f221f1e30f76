"""The `monitor` command: parse options, call one library function, print the result.

Exit codes: 0 ok (for `check`: nothing flagged), 1 failure (a message names the file,
line, key or value and the fix; for `ingest`: a file was refused or rows were rejected;
a --series that matches no series), 2 usage error, 3 `check`/`detect` flagged something, 4 `run`: the report was written but
the email could not be delivered (it is retried next run), 5 `run`/`ingest`/`demo`/`alerts flush`:
another run holds the database's run lock, 6 `check`/`report`/`backtest`/`run`: no source's
data reaches the week (monitor.coverage). Only this module (and schedule.py) reads the
clock; `$MONITOR_NOW` fixes it (see `_now`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import click

from monitor import __version__
from monitor.formats import FORMATS
from monitor.errors import (  # noqa: F401
    EXIT_DELIVERY_FAILED,
    EXIT_FLAGGED,
    EXIT_LOCKED,
    EXIT_NO_DATA,
    MonitorError,
    NoDataError,
)

#: Fixes every command's clock to this time (ISO 8601 with a UTC offset, e.g. 2023-03-06T06:00:00+00:00):
#: to reproduce a past run byte for byte (report, digest Date and Message-ID, timestamps) and for the
#: crash tests, which compare an interrupted run with an uninterrupted one. Unset, the wall clock is read.
NOW_ENV = "MONITOR_NOW"


def _now() -> datetime:
    fixed = os.environ.get(NOW_ENV, "").strip()
    if not fixed:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(fixed)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise MonitorError(
            f"${NOW_ENV} '{fixed}' is not a date and time with a UTC offset (expected e.g. 2023-03-06T06:00:00+00:00, "
            f"or unset it to use the clock)"
        )
    return value.astimezone(timezone.utc)


class _Group(click.Group):
    """Turns MonitorError into one line on stderr and exit code 1, or its own (LockError: 5, NoDataError: 6); a traceback only with --debug."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            if ctx.meta.get("monitor.debug"):
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:  # a config with several problems: one line each
                click.echo(f"error: {line}", err=True)
            ctx.exit(getattr(exc, "exit_code", 1))
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, BrokenPipeError):  # BrokenPipeError: the reader went away (`monitor status | head`); click ends quietly
            raise
        except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
            if ctx.meta.get("monitor.debug"):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="MONITOR_CONFIG",
              help="config file (default: $MONITOR_CONFIG, else ./config/monitor.toml, else built-in defaults)")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help="database file, overriding database.path")
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.version_option(__version__, prog_name="incident-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, db_path: Path | None, debug: bool) -> None:
    """Watch political-violence incident data and flag where violence is rising beyond its own history.

    \b
    Exit codes:
      0  success; for check and detect: nothing flagged
      1  failure: one line per problem names the file and line, or the config key,
         and the fix; for ingest also: rows were rejected (the good rows are kept,
         `monitor rejects` lists the others); for check, backtest and silence add:
         --series matches no series (the nearest keys are named); for fetch (and
         run): a source could not be fetched (what the others fetched is kept)
      2  usage error (unknown option, missing argument, a --week that is no week,
         silence add --series matching several series without --all-matching)
      3  check / detect: at least one series is flagged in the week checked
      4  run / demo / alerts flush: the report was written but a digest could not
         be delivered; it waits in the outbox
      5  run / ingest / alerts flush: another run holds the database's run lock
      6  check / report / backtest / run: no source's data reaches the week asked
         for (or due); the message names each source's last event date. Without
         --week (--to), check, report and backtest judge the latest week with
         data and name it on stderr
    """
    ctx.meta["monitor.debug"] = debug
    ctx.obj = {"config_path": config_path, "db_path": db_path}
    if not debug:
        # statsmodels and numpy warn about fits the detectors already handle (perfect separation on a
        # constant window, a zero in a log): what matters reaches the user as a note, not a warning
        # (--debug shows them). Worker processes read the setting from the environment.
        import os

        from monitor.parallel import hide_library_warnings

        hide_library_warnings()
        os.environ["MONITOR_QUIET_WARNINGS"] = "1"


class _Bars:
    """Progress bars (tqdm) on standard error, one per thing counted (`monitor.types.Progress`): a file's rows,
    series-weeks, simulation cells. Each shows its count, rate and, where the total is known, an estimate of
    the time left; it is cleared when the work is done or interrupted (Ctrl-C)."""

    def __init__(self) -> None:
        self.bar = None
        self.label = ""

    def __call__(self, label: str, done: int, total: int | None) -> None:
        from tqdm import tqdm

        if self.bar is None or label != self.label or done < self.bar.n:  # another task, or the same one again
            self.close()
            self.label = label
            rows = label.endswith("rows fetched") or Path(label).suffix != ""  # a file's name or a paged API: rows
            self.bar = tqdm(total=total, desc=label, unit=" rows" if rows else "", unit_scale=rows, file=sys.stderr, leave=False,
                            dynamic_ncols=True, mininterval=0.25)  # fmt: skip
        if total is not None and total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)
        if total is not None and done >= total:  # done: cleared, so what is printed next starts on a clean line
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _above(echo, bars: "_Bars | None"):
    """`echo` that prints above a progress bar on the terminal (the bar is redrawn below) rather than through it."""
    if bars is None:
        return echo

    def write(text: str) -> None:
        if bars.bar is None:
            echo(text)
        else:
            bars.bar.clear()
            echo(text)
            bars.bar.refresh()

    return write


@contextlib.contextmanager
def _progress():
    """A `Progress` for long work when standard error is a terminal; None otherwise (cron, a pipe, a log file:
    nothing extra is printed). MONITOR_PROGRESS=0 turns the bars off on a terminal too."""
    if not sys.stderr.isatty() or os.environ.get("MONITOR_PROGRESS") == "0":
        yield None
        return
    bars = _Bars()
    try:
        yield bars
    finally:  # also on Ctrl-C: the bar is cleared before click says "Aborted!"
        bars.close()


def _config(ctx: click.Context):
    from monitor.config import load_config

    return load_config(ctx.obj["config_path"], db=ctx.obj["db_path"])


def _store(config, *, create: bool = True, read_only: bool = False):
    """The database; commands that only read it refuse to create an empty one by mistake, and those that
    write nothing (read_only) read it on a read-only filesystem too."""
    from monitor.store import Store

    if not create and not config.db_path.exists():
        raise MonitorError(
            f"database {config.db_path} does not exist: ingest files first (`monitor ingest FILE...`), "
            "or point --db / database.path at an existing one"
        )
    return Store(config.db_path, read_only=read_only)


def _week(config, week: str | None, *, option: str = "--week") -> date | None:
    """The start of the week named on the command line; a label that is no week is a usage error (exit 2)."""
    from monitor.series import parse_week

    if not week:
        return None
    try:
        return parse_week(week, start=config.week.start)
    except MonitorError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _params(pairs: tuple[str, ...]) -> dict | None:
    from monitor.detectors import parse_param_pairs

    return parse_param_pairs(list(pairs)) if pairs else None


_WAIT_OPTION = click.option(
    "--wait", type=click.FloatRange(min=0), default=0, show_default=True,
    help="seconds to wait for another run holding the database's lock (then exit 5)",
)


def _weeks_option(value: str, option: str) -> int:
    """'52w', '52' or '1y' as a number of weeks (a usage error otherwise)."""
    text = value.strip().lower()
    try:
        if text.endswith("y"):
            return int(text[:-1]) * 52
        return int(text[:-1] if text.endswith("w") else text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of weeks (e.g. 52w, 6w or 1y)", param_hint=option) from None


@cli.command()
@click.option("--event", "event", required=True, help="the event's date, YYYY-MM-DD (its week is the first week after)")
@click.option("--before", default="52w", show_default=True, help="weeks before the event's week compared (e.g. 52w, 2y)")
@click.option("--after", default="6w", show_default=True, help="weeks from the event's week on (up to the latest week with data)")
@click.option("--series", "series_filter", help="only series whose key or name contains this text (or 'key:<series key>')")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("compare"), show_default=True,
              help="folder for the charts (the 12 largest rises)")
@click.pass_context
def compare(ctx, event, before, after, series_filter, fmt, out_dir) -> None:
    """Each series before and after a dated event: weekly rates, rate ratio and its 95 % interval.

    The rate ratio comes from a negative-binomial regression of the weeks of both windows with a
    trend and an annual season (as the before window allows), so it compares the weeks after with
    what the weeks before project for them; one sentence per series says it in words, and a chart
    of each of the 12 largest rises is written under --out.
    """
    from datetime import date as Date

    from monitor.compare import compare as run_compare
    from monitor.compare import ranked, sentence

    try:
        day = Date.fromisoformat(event)
    except ValueError:
        raise click.BadParameter(f"{event!r} is not a date YYYY-MM-DD", param_hint="--event") from None
    config = _config(ctx)
    weeks_before, weeks_after = _weeks_option(before, "--before"), _weeks_option(after, "--after")
    with _store(config, create=False, read_only=True) as store:
        comparisons = ranked(run_compare(config, store, event=day, before=weeks_before, after=weeks_after, now=_now(),
                                         series_filter=series_filter))  # fmt: skip
        if not comparisons:
            raise MonitorError(f"no series has weeks both before and after {day.isoformat()}")
        if fmt != "table":
            _emit([c.row() for c in comparisons], list(comparisons[0].row()), fmt)
            return
        rows = [{"series": c.series, "before": c.before_rate, "after": c.after_rate, "ratio": c.rate_ratio, "ci_low": c.ci_low,
                 "ci_high": c.ci_high, "weeks": f"{c.before_weeks}+{c.after_weeks}"} for c in comparisons]  # fmt: skip
        click.echo(_table(rows, ["series", "before", "after", "ratio", "ci_low", "ci_high", "weeks"]))
        click.echo("")
        for c in comparisons:
            click.echo(sentence(c, event=day.isoformat()))
        charts = _compare_charts(config, store, comparisons[:12], day=day, weeks_after=weeks_after, series_filter=series_filter,
                                 out_dir=out_dir)  # fmt: skip
    click.echo(f"\nwrote {charts} chart(s) in {out_dir}")


def _compare_charts(config, store, comparisons, *, day, weeks_after, series_filter, out_dir: Path) -> int:
    from datetime import timedelta

    from monitor.assemble import build_all_series
    from monitor.report.files import chart_slugs
    from monitor.report.plots import plot_comparison

    wanted = {c.series: c for c in comparisons}
    slugs = chart_slugs(wanted)
    end = max(c.event_week for c in comparisons) + timedelta(weeks=max(c.after_weeks for c in comparisons) - 1)
    written = 0
    for s in build_all_series(config, store, week=end, series_filter=series_filter):
        if s.key in wanted:
            plot_comparison(s.counts, wanted[s.key], label=day.isoformat(), path=out_dir / f"{slugs[s.key]}.png")
            written += 1
    return written


@cli.command()
@click.argument("names", nargs=-1)
@_WAIT_OPTION
@click.pass_context
def fetch(ctx: click.Context, names: tuple[str, ...], wait: float) -> None:
    """Fetch what is new from the [[sources]] (all remote ones, or those NAMES) and ingest it.

    Each source starts where its last successful fetch left off. What comes back is stored as a
    file under fetch.folder (a vintage) before it is ingested, so a run killed in between ingests
    that file next time instead of fetching it again. A source that fails (no answer, refused
    access, a rate limit that does not lift, an answer cut short) is named with what to do, changes
    nothing in the database and does not stop the others. Exit 1 if any source failed, 5 if another
    run holds the database's lock, else 0.
    """
    from monitor.fetch import describe, fetch_sources, remote_sources
    from monitor.lock import locked_store

    config = _config(ctx)
    if not remote_sources(config, names):
        raise MonitorError("no [[sources]] to fetch: add an acled-api, ucdp-api or http-csv source to the config "
                           "(see the README, \"Data that arrives by itself\")")  # fmt: skip
    with locked_store(config.db_path, clock=_now, wait=wait, command="monitor fetch", open_store=lambda: _store(config)) as store:
        with _progress() as progress:
            outcomes = fetch_sources(config, store, names=names, now=_now(), clock=_now, progress=progress)
    for outcome in outcomes:
        click.echo(describe(outcome), err=outcome.failed)
    ctx.exit(1 if any(o.failed for o in outcomes) else 0)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="input format (default: ingest.format, usually auto)")
@click.option("--again", is_flag=True, default=False,
              help="read files already ingested (same sha256) again, upserting their rows (e.g. after fixing a mapping)")
@_WAIT_OPTION
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...], fmt: str | None, again: bool, wait: float) -> None:
    """Read incident files into the database (upsert on source and event id).

    A file that cannot be read at all is refused and changes nothing; a row that cannot be
    used is kept in the `rejects` table (`monitor rejects`) and the file's other rows are
    ingested. A stored event is replaced only by a row of the same or a newer revision
    (ACLED `timestamp`); an older row is counted as "older (kept the stored revision)" and
    changes nothing; rows without a revision (legacy ACLED, UCDP, mapped CSV) replace it as
    the latest ingest. A file whose content (sha256) was ingested before is skipped, unless every
    row of it was rejected (fix the mapping or the clock, then ingest it again) or
    --again is given. The sha256 logged and the rows parsed come from one read of
    the file (copied to $TMPDIR while hashed), so a pipe works: `cat f.csv | monitor ingest /dev/stdin`. Exit 1 if any file was refused or any row rejected, with one line on stderr
    per refused file and per rejected row (the first 20); 5 if another run holds the
    database's lock (the lock of the file the database path resolves to; a database with
    other hard links is refused: make a copy instead); else 0.
    """
    from monitor.ingest import REJECT_LINES, ingest_files
    from monitor.lock import locked_store

    config = _config(ctx)
    with locked_store(config.db_path, clock=_now, wait=wait, command="monitor ingest", open_store=lambda: _store(config)) as store:
        with _progress() as progress:
            outcome = ingest_files(store, files, config=config, now=_now(), format=fmt, again=again, progress=progress)
    for r in outcome.results:
        if r.skipped:
            click.echo(f"{r.file}: already ingested (same sha256), nothing to do")
        elif r.format in ("acled-deletions", "ucdp-replaced"):
            click.echo(
                f"{r.file}: {r.format}, {r.rows_read} rows read, {r.deleted} deleted, {r.not_found} not in the database "
                f"(remembered), {r.older} edited after their deletion (kept), {r.rejected} rejected"
            )
        else:
            click.echo(
                f"{r.file}: {r.format}, {r.rows_read} rows read, {r.inserted} inserted, {r.updated} updated, "
                f"{r.unchanged} unchanged, {_older(r)}{r.rejected} rejected"
            )
    for line in outcome.refused:
        click.echo(f"error: {_one_line(line)}", err=True)
    budget = REJECT_LINES
    for rows in outcome.rejected:
        shown = rows.first[: max(budget, 0)]
        budget -= len(shown)
        for line, reason in shown:
            click.echo(f"{_one_line(rows.file)}: line {line}: {_one_line(reason)}", err=True)
        if rows.total > len(shown):
            click.echo(f"{_one_line(rows.file)}: ... and {rows.total - len(shown)} more rejected rows "
                       f"(monitor rejects --ingest {rows.ingest_id})", err=True)  # fmt: skip
    ctx.exit(1 if outcome.refused or outcome.rejected else 0)


def _older(r) -> str:
    """'2 older (kept the stored revision), ' when rows older than their stored revision were kept out, else ''."""
    return f"{r.older} older (kept the stored revision), " if r.older else ""


def _one_line(text: str) -> str:
    """Text from a file, safe on one terminal line: line breaks and control characters (ANSI escapes) made visible."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


@cli.command()
@click.option("--ingest", "ingest_id", type=click.IntRange(min=1), default=None,
              help="list the rows this ingest rejected (ids: `monitor rejects` without it)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="at most this many rows (default: all)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def rejects(ctx, ingest_id, limit, fmt) -> None:
    """Rows that ingests rejected: without --ingest, the ingests that rejected any; with it, its rows and why."""
    config = _config(ctx)
    with _store(config, create=False, read_only=True) as store:
        if ingest_id is None:
            rows = [i for i in store.ingests() if i["rejected"]]
            rows = rows[-limit:] if limit else rows
        else:
            if store.ingest_entry(ingest_id=ingest_id) is None:
                raise MonitorError(f"no ingest #{ingest_id} in {config.db_path} (`monitor rejects` lists the ingests that rejected rows)")
            rows = store.rejects(ingest_id=ingest_id, limit=limit)
    if ingest_id is None:
        if not rows and fmt == "table":
            click.echo("no rejected rows")
            return
        _emit(rows, ["id", "file", "ingested_at", "format", "rows_read", "rejected"], fmt)
    else:
        _emit(rows, ["file", "line", "reason", "raw"], fmt)


@cli.command()
@click.option("--source", help="only this source's incidents (e.g. acled; default: all)")
@click.option("--country", help="only this country's incidents (default: all)")
@click.option("--max-delay", type=click.IntRange(min=0, max=52), default=8, show_default=True,
              help="weeks of delay measured; events known later count as known at this delay")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def delays(ctx, source, country, max_delay, fmt) -> None:
    """How late incidents arrive: the share of a week's eventual count known 0, 1, 2, ... weeks after the week ended.

    Measured from when each incident was first ingested (for a source's first ingest, from ACLED's
    `timestamp` when earlier), over the event weeks that have been over long enough; `weeks` is the
    number of event weeks behind each step. Exit 1 with the reason when there is too little history.
    """
    from monitor.delays import by_day, measure

    config = _config(ctx)
    with _store(config, create=False, read_only=True) as store:
        sightings = store.sightings(source=source, country=country)
    table = measure(sightings, week_start=config.week.start, max_delay=max_delay)
    what = " ".join(p for p in (source or "all sources", f"in {country}" if country else "") if p)
    if table.delays is None:
        raise MonitorError(f"reporting delays of {what}: {table.reason}")
    if fmt == "table":
        click.echo(f"reporting delays of {what}: {table.events:,} incidents in {table.weeks:,} weeks, as of "
                   f"{table.as_of:%Y-%m-%d %H:%M} UTC (the latest ingest)"
                   + (f"; {table.from_timestamp:,} of a first ingest dated by their ACLED timestamp" if table.from_timestamp else ""))  # fmt: skip
        rows = [{"delay": r["delay"], "known": f"{r['known']:.0%}", "weeks": "-" if r["weeks"] is None else r["weeks"]}
                for r in table.rows()]  # fmt: skip
        _emit(rows, ["delay", "known", "weeks"], fmt)
        days = by_day(sightings, week_start=config.week.start)
        if days is not None:
            for line in _when_to_run(config, days):
                click.echo(line)
    else:
        _emit(table.rows(), ["delay", "known", "weeks"], fmt)


def _when_to_run(config, days) -> list[str]:
    """What the days after a week's end say about when to run the weekly job (`monitor delays`, issue 14, item 6)."""
    from datetime import datetime, timedelta, timezone

    from monitor.cron import next_fire

    shown = ", ".join(f"{days.day_name(d)[:3].title()} {share:.0%}" for d, share in enumerate(days.shares[:9]))
    lines = [f"known by the end of each day after the week ended ({days.weeks} weeks): {shown}"]
    first = days.first_update
    run_day = days.day_name(first + 1)
    suggested = f"0 6 * * {run_day[:3]}"
    from monitor.series import WEEKDAYS

    # the first day of a week (2024-01-01 is a Monday): a weekly cron fires as long after every week's end
    end = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=WEEKDAYS.index(config.week.start))
    hours = (next_fire(config.schedule.cron, config.schedule.timezone, end) - end) / timedelta(hours=1)
    best = days.share_at(24 * (first + 1) + 6)
    lines.append(f"the week's first update is in by the end of {days.day_name(first).title()}: a run on {run_day.title()} at 06:00 "
                 f"sees {best:.0%} of the week; the configured schedule ('{config.schedule.cron}', {config.schedule.timezone}) runs "
                 f"{hours:.0f} hours after the week ends and sees {days.share_at(hours):.0%}")  # fmt: skip
    if days.share_at(hours) < best and hours < 24 * 7:
        lines.append(f'suggested: [schedule] cron = "{suggested}" (and the same in a crontab)')
    return lines


def _fmt(value, digits: int = 2) -> str:
    if _missing(value):
        return "NA"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)  # inf: e.g. a rise from an all-zero baseline
        return f"{value:.{digits}f}" if value != int(value) or digits > 2 else f"{value:.0f}"
    return _one_line(value)


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _emit(rows: list[dict], columns: list[str], fmt: str) -> None:
    if fmt == "json":
        clean = [{c: (None if _missing(r.get(c)) else r.get(c)) for c in columns} for r in rows]
        click.echo(json.dumps(clean, indent=2, default=str))
    elif fmt == "csv":
        import csv
        import io

        from monitor.report.markdown import csv_safe

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:  # a cell like =HYPERLINK(...) from an incident file must not run in a spreadsheet
            writer.writerow(["NA" if _missing(r.get(c)) else csv_safe(r.get(c)) for c in columns])
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(_table(rows, columns))


@cli.command()
@click.option("--week", help="week to check, e.g. 2023-W08 (default: the latest complete week with data)")
@click.option("--series", "series_filter",
              help="only series whose key or name contains this text (case-insensitive), or exactly one: key:<series key>; "
                   "one that matches no series fails (exit 1) naming the nearest keys")
@click.option("--detector", help="use this detector instead of each series' own")
@click.option("--param", "params", multiple=True, help="detector parameter key=value (with --detector), repeatable")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def check(ctx, week, series_filter, detector, params, fmt) -> None:
    """Check the series in the database for one week; exit 3 if anything is flagged, 6 if no data reaches the week."""
    from monitor.coverage import choose_week
    from monitor.detection import detect_week

    config = _config(ctx)
    if params and not detector:
        raise click.UsageError("--param needs --detector")
    now = _now()
    start = _week(config, week)
    with _store(config, create=False, read_only=True) as store:
        coverage = choose_week(config, store, week=start, now=now)
        _announce(coverage, "checking")
        result = detect_week(
            config, store, week=coverage.week, now=now,
            series_filter=series_filter, detector=detector, params=_params(params), with_context=False,
        )
    _no_data_series(result)
    _problems(result)
    if not result.results:
        raise MonitorError(
            f"no series to check for {result.week}" + (f" matching '{series_filter}'" if series_filter else "")
            + " (ingest data first, or check the [[series]] definitions)"
        )
    if result.nowcast_note:
        click.echo(f"note: {result.nowcast_note}", err=True)
    rows = [
        {
            "nowcast": r.detection.nowcast, "nowcast_low": r.detection.nowcast_low, "nowcast_high": r.detection.nowcast_high,
            "complete_share": r.detection.complete_share,
            "series": r.series.key, "week": result.week, "observed": r.detection.observed, "expected": r.detection.expected,
            "threshold": r.detection.threshold, "score": r.detection.score, "pvalue": r.detection.pvalue,
            "qvalue": r.detection.qvalue, "alarm": _alarm_cell(r.detection.alarm, fmt), "level": r.detection.level,
            "detector": r.detection.detector, "note": "; ".join(x for x in (r.detection.why, r.detection.note) if x),
        }
        for r in result.results
    ]
    columns = ["series", "week", "observed", "expected", "threshold", "score", "pvalue", "alarm", "level", "detector", "note"]
    if config.detection.multiple_testing == "fdr":
        columns.insert(columns.index("alarm"), "qvalue")
    if any(not _missing(r.detection.nowcast) for r in result.results):  # the week is still filling (monitor.nowcast)
        at = columns.index("observed") + 1
        columns[at:at] = ["complete_share", "nowcast", "nowcast_low", "nowcast_high"]
    _emit(rows, columns, fmt)
    ctx.exit(EXIT_FLAGGED if result.flagged else 0)


def _announce(coverage, doing: str, *, option: str = "--week", fatal: bool = True) -> None:
    """On stderr, before any output: the week chosen without --week, and why; then, if no source's data reaches
    the week, the error (NoDataError, exit 6; with fatal=False only the line: the command goes on)."""
    if not coverage.asked:
        click.echo(coverage.announce(doing), err=True)
    if not coverage.reached:
        if fatal:
            raise NoDataError(coverage.no_data_message(option=option))
        click.echo(f"error: {coverage.no_data_message(option=option)}", err=True)


def _no_data_series(result) -> None:
    """On stderr: how many series have no data this week (their sources stop before it); the rest were judged."""
    if result.no_data and not result.no_data_line:
        reach = "; ".join(dict.fromkeys(result.no_data.values()))
        click.echo(f"{len(result.no_data)} of {len(result.results)} series have no data for {result.week} ({reach}): "
                   "not judged, see their note", err=True)  # fmt: skip


def _problems(result) -> None:
    """On stderr, one line per [[series]] definition that yielded no series and why (the others were judged)."""
    for problem in result.problems:
        click.echo(f"warning: {_one_line(problem.message)}", err=True)


def _alarm_cell(alarm: bool | None, fmt: str):
    """ALARM / - in tables, 1 / 0 in CSV (as `detect` prints), true / false in JSON; NA when undecided."""
    if alarm is None:
        return None
    if fmt == "table":
        return "ALARM" if alarm else "-"
    return int(alarm) if fmt == "csv" else alarm


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--detector", required=True, help="detector name (see `monitor detectors`)")
@click.option("--param", "params", multiple=True, help="detector parameter key=value, repeatable (e.g. reweight=true, limit54=5,4)")
@click.option("--last", type=click.IntRange(min=1), default=None, help="only the last N weeks (default: every week)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def detect(ctx, file, detector, params, last, fmt) -> None:
    """Run a detector on a CSV of week_start,count[,series]; exit 3 if the last week of any series alarms."""
    import pandas as pd

    from monitor.detection import detect_csv

    frame = detect_csv(file, config=_config(ctx), detector=detector, params=_params(params) or {}, last=last)
    # alarm 1 / 0, NA where undecided (a nullable integer column: printed 1 and 0, never 1.0 and 0.0)
    frame = frame.assign(week_start=frame["week_start"].dt.strftime("%Y-%m-%d"), alarm=frame["alarm"].astype("Int64"))
    columns = [c for c in frame.columns if c != "fallback_from"]
    if fmt == "csv":  # written by pandas: thousands of series make hundreds of thousands of cells
        out = frame[columns].copy()
        for column in out.columns:  # text (object or pandas' str dtype): a cell like =HYPERLINK(...) is made inert
            if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
                out[column] = _csv_text(out[column])
        click.echo(out.to_csv(index=False, na_rep="NA", lineterminator="\n"), nl=False)
    else:
        rows = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
        _emit(rows, columns, fmt)
    last_rows = frame.groupby("series").tail(1) if "series" in frame.columns else frame.tail(1)
    ctx.exit(EXIT_FLAGGED if (last_rows["alarm"] == 1).any() else 0)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "<NA>"


def _csv_text(column):
    """A text column's cells for `detect`'s CSV: missing (`_missing`, the text "<NA>" included) None, the rest
    through `csv_safe`; vectorised where every cell is text or missing, cell by cell otherwise."""
    import pandas as pd

    from monitor.report.markdown import csv_safe, csv_safe_text

    if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
        return column.astype(object).map(lambda v: None if _missing(v) else csv_safe(v))
    cells = csv_safe_text(column)
    cells[column.eq("<NA>").to_numpy(dtype=bool, na_value=False)] = None
    return cells


@cli.command()
@click.option("--week", help="week to report on, e.g. 2023-W09 (default: the latest complete week with data)")
@click.pass_context
def report(ctx, week) -> None:
    """Write reports/<YYYY-Www>/report.md and its charts (no ingest, no email); exit 6 if no data reaches the week."""
    from monitor.coverage import choose_week
    from monitor.pipeline import report_week

    config = _config(ctx)
    start = _week(config, week)
    now = _now()
    with _store(config, create=False) as store:
        coverage = choose_week(config, store, week=start, now=now)
        _announce(coverage, "reporting on", fatal=False)  # the report is written all the same, leading with it
        result, files = report_week(config, store, week=coverage.week, now=now)
    _no_data_series(result)
    _problems(result)
    click.echo(f"{result.week}: {len(result.flagged)} of {len(result.results)} series flagged; report: {files.markdown}"
               + (f" (web page: {files.html})" if files.html else ""))
    ctx.exit(EXIT_NO_DATA if result.no_data_line else 0)


def _print_outcome(outcome) -> None:
    if outcome.result.no_data_line:  # before anything else: nothing in the week was judged (exit 6)
        click.echo(f"error: {outcome.result.no_data_line}", err=True)
    _no_data_series(outcome.result)
    _problems(outcome.result)
    from monitor.fetch import describe

    for f in getattr(outcome, "fetched", ()):
        click.echo(describe(f), err=f.failed)
    ids = {r.file: r.ingest_id for r in outcome.ingest.rejected}
    for r in outcome.ingest.results:
        if not r.skipped:
            hint = f" (monitor rejects --ingest {ids[r.file]})" if r.file in ids else ""
            click.echo(f"ingested {r.file}: {r.inserted} inserted, {r.updated} updated, {_older(r)}{r.rejected} rejected{hint}")
    for line in outcome.ingest.refused:
        click.echo(f"error: {_one_line(line)}", err=True)
    result = outcome.result
    flagged = _one_line(", ".join(f"{r.series.title} {r.series.label}" for r in result.flagged) or "none")
    click.echo(f"{result.week}: {len(result.flagged)} of {len(result.results)} series flagged: {flagged}")
    click.echo(f"report: {outcome.files.markdown}" + (f" (web page: {outcome.files.html})" if outcome.files.html else ""))
    if not outcome.emailed:
        click.echo("alerts: not processed (--no-email or alerts.enabled = false); the alert states were not advanced")
        return
    for d in outcome.delivered:
        where = d["path"] if d["channel"] == "file" else "SMTP"
        click.echo(f"alert digest ({d['route']}, {d['week']}) delivered via {where}: {_one_line(d['subject'])}")
    if outcome.delivery_error:
        click.echo(
            f"error: {outcome.outbox_pending} message(s) left in the outbox, to be sent by the next run or "
            f"`monitor alerts flush`"
            + (f"; {outcome.unknown} of unknown outcome kept, not resent (`monitor alerts flush --resend-unknown`)"
               if getattr(outcome, "unknown", 0) else "")
            + f": {outcome.delivery_error}", err=True)
    elif not outcome.delivered:
        click.echo("alert digest: nothing new to announce")


@cli.command()
@click.option("--week", help="week to run, e.g. 2023-W09 (default: the last complete week; exit 6 if no data reaches it)")
@click.option("--no-email", is_flag=True, help="write the report but send no digest")
@_WAIT_OPTION
@click.pass_context
def run(ctx, week, no_email, wait) -> None:
    """The weekly job: fetch the [[sources]], ingest new inbox files, detect, report, email (exit 1: a source could not be
    fetched or a file was refused; 4: email not delivered; 5: another run is on; 6: no source's data reaches the week,
    recorded no-data)."""
    from monitor.lock import locked_store
    from monitor.schedule import run_week

    config = _config(ctx)
    start = _week(config, week)
    with locked_store(config.db_path, clock=_now, wait=wait, command="monitor run", open_store=lambda: _store(config)) as store:
        outcome = run_week(config, store, week=start, now=_now(), send=not no_email, clock=_now)
    _print_outcome(outcome)
    ctx.exit(outcome.exit_code)


@cli.command()
@click.pass_context
def schedule(ctx) -> None:
    """Catch up missed weeks, then run the weekly job on the configured cron schedule (APScheduler), until SIGTERM."""
    from monitor.schedule import serve

    config = _config(ctx)
    with _progress() as progress:
        serve(config, echo=_above(click.echo, progress), progress=progress)


def _section(title: str, rows: list | None, columns: list[str], *, empty: str) -> None:
    """A titled table of rows: dicts, or the store's typed values (read through `as_row()`)."""
    click.echo(f"\n{title}")
    if rows is None:
        click.echo("  not available")
    elif not rows:
        click.echo(f"  {empty}")
    else:
        rows = [r.as_row() if hasattr(r, "as_row") else r for r in rows]
        click.echo(_table([{c: _cell(r.get(c)) for c in columns} for r in rows], columns))


def _json_value(value):
    """JSON for what `json` cannot write itself: the store's typed values as their columns, anything else as text."""
    return value.as_row() if hasattr(value, "as_row") else str(value)


def _cell(value):
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else ("" if value is None else value)


@cli.command("status")
@click.option("--runs", "limit", type=click.IntRange(min=1), default=10, show_default=True, help="how many recent runs to list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def status_command(ctx, limit, fmt) -> None:
    """The last runs, the next scheduled run, weeks owed, outbox, silences and data freshness per source."""
    from monitor.status import status

    config = _config(ctx)
    with _store(config, create=False, read_only=True) as store:
        info = status(config, store, now=_now(), runs=limit)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, default=_json_value))
        return
    plan = info["schedule"]
    click.echo(f"database: {info['database']}")
    click.echo(f"next scheduled run: {plan['next_run']} (cron '{plan['cron']}', {plan['timezone']}), "
               f"reporting on {plan['next_week']}")  # fmt: skip
    click.echo(f"weeks owed (run by the next `monitor schedule` job, at most {plan['catch_up_weeks']}): "
               f"{', '.join(plan['owed']) or 'none'}")  # fmt: skip
    _section("last runs (newest first)", info["runs"],
             ["week", "started", "finished", "status", "flagged", "announced", "error"], empty="no runs recorded")  # fmt: skip
    _section("pending outbox messages", info["outbox"],
             ["id", "week", "recipients", "subject", "attempts", "last_error", "created_at"], empty="none")  # fmt: skip
    _section("active silences", info["silences"], ["id", "filter", "until", "comment", "author"], empty="none")
    _section("data freshness per source", info["sources"], ["source", "records", "latest_event_date", "last_week_with_data",
             "weeks_behind", "last_ingest", "weeks_since_ingest"], empty="no data ingested")  # fmt: skip
    if info.get("fetches"):
        _section("fetches ([[sources]], the last of each)", info["fetches"],
                 ["source", "kind", "last_fetch", "status", "last_success", "file", "message"], empty="none")  # fmt: skip


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True,
              help="folder for everything the demo makes (database, config, inbox, reports, .eml)")
@_WAIT_OPTION
@click.pass_context
def demo(ctx, out_dir: Path, wait: float) -> None:
    """Generate synthetic Syria data (2020 – March 2023) and run the weekly job for 2023-W09."""
    from monitor.demo import run_demo

    if ctx.obj["config_path"] or ctx.obj["db_path"]:
        raise click.UsageError("demo writes its own config and database under --out; drop --config/--db (or $MONITOR_CONFIG)")

    outcome = run_demo(out_dir, now=_now(), wait=wait)
    click.echo("demo data is SYNTHETIC (generated with a fixed seed, calibrated to public figures)")
    _print_outcome(outcome)
    ctx.exit(outcome.exit_code)


@cli.command()
@click.option("--from", "first", help="first week to replay, e.g. 2022-W01 (default: --weeks before --to)")
@click.option("--to", "last", help="last week to replay (default: the latest complete week with data; with --counts: the file's last)")
@click.option("--weeks", type=click.IntRange(min=1), default=None, help="weeks to replay when --from is not given  [default: 52; with --counts: all]")
@click.option("--series", "series_filter", help="only series whose key or name contains this text")
@click.option("--detector", help="use this detector instead of each series' own (required with --counts)")
@click.option("--param", "params", multiple=True, help="detector parameter key=value (with --detector), repeatable")
@click.option("--counts", "counts_file", type=click.Path(path_type=Path), help="replay a CSV of week_start,count[,series] instead of the database")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("backtest"), show_default=True)
@click.option("--as-known", "as_known", is_flag=True,
              help="also replay each week with only the data ingested by its run (first sights, revisions and deletions "
                   "as they were then): alerts earlier or later than on today's data, and the nowcast's error and coverage")
@click.pass_context
def backtest(ctx, first, last, weeks, series_filter, detector, params, counts_file, out_dir, as_known) -> None:
    """Replay the detectors over past weeks, each as if it were the current one; alerts per 100 series-weeks.

    On the database, the measured false-alert rate (alerts per 100 series-weeks outside known
    surges) is stored there; reports with the same detectors, parameters and levels quote it.
    With --as-known, each week is also judged on the data the database had when its run came
    (`[schedule] cron` after the week ended), as the weekly job judged it then.
    """
    from monitor.backtest import (
        backtest_csv,
        run_backtest,
        summary_lines,
        write_backtest,
    )

    config = _config(ctx)
    if params and not detector:
        raise click.UsageError("--param needs --detector")
    known = None  # the replay as known at the time (--as-known)
    if counts_file is not None:
        if not detector:
            raise click.UsageError("--counts needs --detector (e.g. --detector farrington)")
        if first or last or series_filter or as_known:
            raise click.UsageError("--from, --to, --series and --as-known apply to the database; with --counts use --weeks")
        with _progress() as progress:
            result = backtest_csv(counts_file, config=config, detector=detector, params=_params(params), weeks=weeks, progress=progress)
        title = f"{detector} on {counts_file.name}"
    else:
        from monitor.coverage import choose_week

        first_week, last_week = _week(config, first, option="--from"), _week(config, last, option="--to")
        now = _now()
        with _store(config, create=False) as store, _progress() as progress:
            _announce(choose_week(config, store, week=last_week, now=now), "replaying up to", option="--to")
            result = run_backtest(
                config, store, first_week=first_week, last_week=last_week, weeks=weeks or 52,
                now=now, series_filter=series_filter, detector=detector, params=_params(params), progress=progress,
            )
            if as_known:
                from monitor.asknown import replay

                known = replay(config, store, today=result.detail, first_week=result.first_week, last_week=result.last_week,
                               series_filter=series_filter, detector=detector, params=_params(params), progress=progress)  # fmt: skip
        title = f"{detector or 'configured detectors'} on {config.db_path.name}"
    markdown = write_backtest(result, out_dir, title=title)
    for line in summary_lines(result):
        click.echo(line)
    if known is not None:
        from monitor.asknown import summary_lines as known_lines
        from monitor.asknown import write_as_known

        write_as_known(known, out_dir, markdown)
        for line in known_lines(known):
            click.echo(line)
    columns = ["series", "weeks", "alerts", "episodes", "warnings", "first_alert", "last_alert"]
    top = result.per_series.head(15)
    if len(top):
        click.echo(_table(top[columns].to_dict("records"), columns))
        if len(result.per_series) > len(top):
            click.echo(f"... {len(result.per_series) - len(top)} more series in the tables")
    click.echo(f"wrote {markdown} and the CSV and JSON tables beside it")
    if counts_file is not None:
        click.echo("the measured rate is not stored (--counts is not the database's data)")
    elif series_filter:
        click.echo(f"stored the measured rate in {config.db_path.name}; reports quote only a backtest of all series (no --series)")
    elif result.burden.series_weeks:
        click.echo(f"stored the measured rate in {config.db_path.name}: reports with this configuration "
                   f"(fingerprint {result.fingerprint}) quote it")  # fmt: skip


@cli.command()
@click.option("--detector", default="farrington", show_default=True, help="detector to score")
@click.option("--param", "params", multiple=True, help="detector parameter key=value, repeatable")
@click.option("--n-series", type=click.IntRange(min=1), default=100, show_default=True, help="series per scenario and k")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--scenarios", default="", help="comma-separated scenario ids 1..42 (default: all)")
@click.option("--ks", default="1,2,3,4,5,6,7,8,9,10", show_default=True, help="current outbreak sizes k, comma-separated (past outbreaks: 2, 3, 5, 10)")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="processes")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("simulation"), show_default=True)
@click.pass_context
def simulate(ctx, detector, params, n_series, seed, scenarios, ks, workers, out_dir) -> None:
    """Score a detector on the Noufaily et al. (2013) simulation: FPR, POD, weeks to first alarm."""
    import time

    from monitor.evaluate import SCENARIOS, evaluate, to_markdown, write_simulation

    try:
        ids = {int(s) for s in scenarios.split(",") if s.strip()}
        sizes = [float(k) for k in ks.split(",") if k.strip()]
    except ValueError:
        raise click.UsageError("--scenarios and --ks take comma-separated numbers, e.g. --scenarios 1,14 --ks 5,10") from None
    chosen = [s for s in SCENARIOS if not ids or s.id in ids]
    if ids - {s.id for s in SCENARIOS} or not sizes:
        raise click.UsageError(f"--scenarios must be ids 1..{len(SCENARIOS)} and --ks non-empty")
    model = _config(ctx).params_for(detector, overrides=_params(params))
    started = time.perf_counter()
    with _progress() as progress:
        table = evaluate(detector, model, scenarios=chosen, n_series=n_series, seed=seed, ks=sizes, workers=workers, progress=progress)
    seconds = time.perf_counter() - started
    summary, markdown = write_simulation(
        table, out_dir=out_dir, detector=detector, params=model, n_series=n_series, seed=seed, seconds=seconds, workers=workers
    )
    click.echo(to_markdown(summary), nl=False)
    click.echo(f"{len(table)} cells x {n_series} series in {seconds:.1f} s; wrote {markdown}")


@cli.group()
def silence() -> None:
    """Silence alerts: not emailed until a date, still shown (marked) in the report."""


@silence.command("add")
@click.option("--series", "series_filter", required=True,
              help="series whose key or name contains this text (case-insensitive), or exactly one: key:<series key>")
@click.option("--until", "until", required=True, help="last day of the silence, YYYY-MM-DD (inclusive)")
@click.option("--comment", required=True, help="why (shown in every report while the silence lasts)")
@click.option("--author", default=None, help="who (default: $USER)")
@click.option("--all-matching", is_flag=True,
              help="silence every series the text matches (and any later one it matches); without it, a text matching several is refused")
@click.pass_context
def silence_add(ctx, series_filter, until, comment, author, all_matching) -> None:
    """Add a silence. --series must match a series in the database (exit 1 naming the nearest keys if none);
    text matching several lists them and needs --all-matching (exit 2 without)."""
    import getpass

    from monitor.assemble import silence_targets

    try:
        day = date.fromisoformat(until)
    except ValueError:
        raise click.BadParameter(f"{until!r} is not a date; use YYYY-MM-DD, e.g. 2023-03-31", param_hint="--until") from None
    now = _now()
    if day < now.date():
        raise click.BadParameter(f"{until} is in the past (today is {now.date()})", param_hint="--until")
    if not series_filter.strip() or not comment.strip():
        raise click.UsageError("--series and --comment must not be empty")
    try:
        who = author or getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    config = _config(ctx)
    text = series_filter.strip()
    with _store(config, create=False) as store:
        keys = silence_targets(config, store, series_filter=text, now=now)
        if len(keys) > 1 and not all_matching:
            from monitor.series import shell_quote

            shown = "\n".join(f"  {shell_quote('key:' + k)}" for k in keys[:20])
            more = f"\n  ... and {len(keys) - 20} more" if len(keys) > 20 else ""
            raise click.UsageError(
                f"--series {text!r} matches {len(keys)} series:\n{shown}{more}\n"
                "silence one with --series 'key:<series key>', or all of them, and any later series it matches, with --all-matching"
            )
        silence_id = store.add_silence(filter=text, until=day, comment=comment.strip(), author=who, now=now)
    matched = f" ({len(keys)} series now: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})" if len(keys) > 1 else ""
    click.echo(f"silence #{silence_id}: series matching '{text}'{matched} not emailed until {day} (by {who}: {comment.strip()})")
    if not keys:  # nothing ingested yet: a silence may be set up ahead of the data
        click.echo(f"warning: no series in {config.db_path} yet to check --series {text!r} against; "
                   "the silence holds for whatever series it matches once there are some", err=True)  # fmt: skip


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="include expired silences")
@click.pass_context
def silence_list(ctx, show_all) -> None:
    """List active silences (--all: every silence)."""
    config = _config(ctx)
    now = _now()
    with _store(config, create=False, read_only=True) as store:
        rows = store.silences() if show_all else store.active_silences(now)
    if not rows:
        click.echo("no active silences" if not show_all else "no silences")
        return
    table = [{**s.as_row(), "status": "active" if s.active_on(now.date()) else "ended"} for s in rows]
    click.echo(_table(table, ["id", "filter", "until", "status", "author", "comment", "created_at"]))


@silence.command("expire")
@click.argument("silence_id", type=int)
@click.pass_context
def silence_expire(ctx, silence_id) -> None:
    """End a silence now."""
    config = _config(ctx)
    with _store(config, create=False) as store:
        if not store.expire_silence(silence_id, now=_now()):
            raise click.ClickException(f"no active silence #{silence_id} (see `monitor silence list --all`)")
    click.echo(f"silence #{silence_id} expired")


@cli.group()
def alerts() -> None:
    """The alert outbox and lifecycle."""


@alerts.command("flush")
@_WAIT_OPTION
@click.option("--resend-unknown", is_flag=True,
              help="also resend messages of unknown outcome (sent whole, no final answer): their recipients may get them twice")
@click.pass_context
def alerts_flush(ctx, wait: float, resend_unknown: bool) -> None:
    """Send the messages waiting in the outbox (exit 4 if some are still undelivered or their outcome is unknown)."""
    from monitor.alerts.outbox import flush
    from monitor.lock import locked_store

    config = _config(ctx)
    # the run lock: a flush during a weekly run could otherwise send the run's messages a second time
    with locked_store(config.db_path, clock=_now, wait=wait, command="monitor alerts flush",
                      open_store=lambda: _store(config, create=False)) as store:  # fmt: skip
        requeued = store.resend_unknown() if resend_unknown else 0
        result = flush(store, settings=config.alerts, password=config.smtp_password, now=_now(),
                       eml_dir_for=lambda w: config.report_settings.folder / w)  # fmt: skip
    if requeued:
        click.echo(f"resending {requeued} message(s) of unknown outcome (their recipients may get them twice)")
    for d in result.delivered:
        click.echo(f"delivered #{d['id']} ({d['route']}, {d['week']}) via {d['path'] or 'SMTP'}: {d['subject']}")
    if result.failed:
        unknown = (f"; {result.unknown} message(s) of unknown outcome kept, not resent (the server may have them): "
                   "see `monitor alerts list`, resend with `monitor alerts flush --resend-unknown`") if result.unknown else ""  # fmt: skip
        click.echo(f"error: {result.pending} message(s) still in the outbox{unknown}: {result.error}", err=True)
        ctx.exit(EXIT_DELIVERY_FAILED)
    if not result.delivered:
        click.echo("outbox empty: nothing to send")


@alerts.command("list")
@click.pass_context
def alerts_list(ctx) -> None:
    """Every series with an alert state (pending, firing, recovering, resolved), the open emergence alerts
    (new actors, new places, more actors) and the outbox."""
    config = _config(ctx)
    with _store(config, create=False, read_only=True) as store:
        states = [s for s in store.alert_states().values() if s.state]
        emerged = [e for e in store.emergence_states().values() if e.state == "open"]
        outbox = store.outbox()
    rows = [{"series": s.series, "state": s.state, "severity": s.severity, "since": s.since_week,
             "announced": s.announced_week or "-", "last_week": s.last_week} for s in sorted(states, key=lambda s: s.series)]  # fmt: skip
    click.echo(_table(rows, ["series", "state", "severity", "since", "announced", "last_week"]) if rows else "no alerts")
    if emerged:
        rows = [{"kind": e.kind, "country": e.country, "admin1": e.admin1, "what": e.what, "since": e.first_week,
                 "last_flagged": e.last_week, "announced": e.announced_week or "not sent", "key": e.key}
                for e in sorted(emerged, key=lambda e: (e.kind, e.country, e.admin1, e.key))]  # fmt: skip
        click.echo(f"emergence alerts open (not announced again until absent [emerging] weeks = {config.emerging.weeks}):")
        click.echo(_table(rows, ["kind", "country", "admin1", "what", "since", "last_flagged", "announced", "key"]))
    pending = [o for o in outbox if o.pending]
    dead = [o for o in outbox if o.refused]
    unknown = [o for o in outbox if o.unknown]
    click.echo(f"outbox: {len(outbox)} message(s), {len(pending)} pending, {len(dead)} refused for good"
               + (f", {len(unknown)} of unknown outcome (not resent; `monitor alerts flush --resend-unknown`)" if unknown else ""))
    for o in pending:
        click.echo(f"  #{o.id} {o.week} {o.route}: {o.subject} ({o.attempts} attempt(s); {o.last_error or 'not tried'})")
    for o in unknown:
        click.echo(f"  unknown #{o.id} {o.week} {o.route}: {o.subject} ({o.unknown_at}: {o.last_error})")
    for o in dead:
        click.echo(f"  refused #{o.id} {o.week} {o.route}: {o.subject} ({o.dead_at}: {o.last_error})")


@cli.command()
def detectors() -> None:
    """List the detectors, their rule, parameters, defaults and meaning."""
    from monitor.detectors import describe

    for entry in describe():
        click.echo(f"{entry['name']}: {entry['summary']}")
        for p in entry["parameters"]:
            click.echo(f"    {p['name']} = {p['default']!r}: {p['description']}")
        click.echo("")


def main() -> None:
    try:
        cli(prog_name="monitor")
    finally:
        # The command is done (click exits through here): what it imported and built lives until the process
        # ends. Frozen, it is skipped by the cycle collections of the interpreter's shutdown, which would
        # otherwise walk every object of pandas, scipy and pydantic once more: about a tenth of a second of a
        # quick command such as `monitor check` (scripts/bench_detect.py --cli).
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
