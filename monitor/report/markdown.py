"""The weekly Markdown report: header, key messages, flagged and at-a-glance tables, charts,
the incidents behind each alarm, and the method in plain words.

Everything that comes from data (region names, actors, notes, parameters) goes through
`md_escape`, so no incident note can break a table, open a link or inject HTML.
Rendering reads no clock and writes no run time (not even result.generated_at): re-running
the same week on the same data rewrites report.md and summary.json byte for byte.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from monitor.detectors import detector_method
from monitor.numbers import fmt_num, fmt_p, fmt_score, is_missing
from monitor.formats import record_url
from monitor.series import YEAR_AGO_WEEKS, figures_cell, figures_text, metric_unit, observed_text, result_figures, series_name
from monitor.types import RunResult, SeriesResult

# Markdown/HTML metacharacters: HTML-significant ones become entities, the rest get a
# backslash (CommonMark: any ASCII punctuation may be backslash-escaped; GFM tables accept `\|`).
_ESCAPES = {c: "\\" + c for c in "\\`*_[]|~$#!{}"}
_ESCAPES.update({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_TRANSLATE = str.maketrans(_ESCAPES)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheet formula injection (OWASP CSV injection)

# escaping


def md_escape(value: Any, *, limit: int | None = None) -> str:
    """Make a data value safe inside Markdown text and table cells.

    Collapses newlines and other whitespace to one space, drops control characters,
    trims to `limit` characters (with "…"), turns `& < >` into HTML entities,
    backslash-escapes Markdown punctuation (`\\ ` * _ [ ] | ~ $ # ! { }`) and prefixes
    a value starting with `= + - @` with an apostrophe, so a table pasted into a
    spreadsheet cannot run a formula.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover
        pass
    text = str(value)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c.isspace() else c for c in text)
    text = re.sub(r" {2,}", " ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(1, limit - 1)].rstrip() + "…"
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text.translate(_TRANSLATE)


def csv_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with `= + - @`, a tab or a carriage return
    gets a leading apostrophe (the OWASP CSV-injection rule); numbers and other values pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_safe_text(column: Any) -> Any:
    """`csv_safe` on every cell of a pandas column of text (str, or object holding str and missing values):
    an object ndarray of the cells, missing ones None; vectorised, for columns of many thousand cells."""
    cells = column.to_numpy(dtype=object, na_value=None, copy=True)
    formula = column.str.startswith(_FORMULA_START, na=False).to_numpy(dtype=bool, na_value=False)
    cells[formula] = "'" + cells[formula]
    return cells


def _day(d: date | None) -> str:
    return d.isoformat() if d else "unknown"


def _long_day(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


def week_dates(result: RunResult) -> str:
    """'Mon 27 Feb 2023 – Sun 5 Mar 2023'."""
    return f"{result.week_start:%a} {_long_day(result.week_start)} – {result.week_end:%a} {_long_day(result.week_end)}"


def _sentence(text: str) -> str:
    """A message as a sentence: capitalised, with a full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


# names


def _where(r: SeriesResult) -> str:
    """'Islamic State events in Homs' / '... overall' (raw)."""
    s = r.series
    title = s.title or s.definition
    return f"{title} overall" if not s.labels else f"{title} in {s.label}"


def _status_words(r: SeriesResult) -> str:
    if r.status == "new" or (r.detection.alarm and r.weeks_in_alert <= 1):
        return "new this week"
    return f"in alert for {_plural(r.weeks_in_alert, 'week')}"


def _status_phrase(r: SeriesResult) -> str:
    """'new (first week in alert)' / 'continuing, in alert for 3 weeks'."""
    if r.status == "new" or r.weeks_in_alert <= 1:
        return "new (first week in alert)"
    return f"{md_escape(r.status or 'continuing')}, in alert for {_plural(r.weeks_in_alert, 'week')}"


def _before_text(r: SeriesResult, result: RunResult) -> str:
    """'Last week: 3 events (0 fatalities); the same week a year earlier (2022-W09): no data (the series starts in 2022-W20).'"""
    from monitor.weeks import week_label

    metric = metric_unit(r)
    last = figures_text(result_figures(r, result, weeks_back=1), metric=metric)
    ago_figures = result_figures(r, result, weeks_back=YEAR_AGO_WEEKS)
    ago = figures_text(ago_figures, metric=metric)
    counts = r.series.counts
    if not ago_figures.known and len(counts) and counts.index[0].date() > ago_figures.week:
        ago += f" (the series starts in {week_label(counts.index[0].date())})"
    return f"Last week: {last}; the same week a year earlier ({week_label(ago_figures.week)}): {ago}."


#: The line under a table with figure columns: what they hold.
FIGURES_KEY = (
    "Events (fatalities): the week's events and their fatalities, whatever the series counts; Last week and Year ago "
    f"(the week {YEAR_AGO_WEEKS} weeks earlier, the same ISO week a year before) in the same form; no data: the week "
    "is before the series' first incident."
)


def _figure_cells(r: SeriesResult, result: RunResult) -> list[str]:
    """This week's, last week's and the year-ago week's 'events (fatalities)' cells."""
    return [figures_cell(result_figures(r, result, weeks_back=back)) for back in (0, 1, YEAR_AGO_WEEKS)]


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A GFM table; cells must already be escaped. `align`: one char per column, l/r/c."""
    align = align or "l" * len(header)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _level(r: SeriesResult) -> str:
    d = r.detection
    if is_missing(d.expected) or is_missing(d.observed):
        return "NA"
    if d.expected <= 0:
        return "above (0 expected)" if d.observed > 0 else "at baseline"
    ratio = d.observed / d.expected
    word = "above" if ratio > 1.25 else ("below" if ratio < 0.75 else "near")
    return f"×{ratio:.1f} ({word})"


def _glance_status(r: SeriesResult, no_data: Mapping[str, str]) -> str:
    d = r.detection
    if r.series.key in no_data:
        return f"no data ({md_escape(no_data[r.series.key], limit=120)})"
    if d.alarm is None:
        return "undecided" + (f": {md_escape(d.note, limit=120)}" if d.note else "")
    if d.alarm:
        return f"**ALARM** ({r.status or 'new'}, {_plural(r.weeks_in_alert, 'week')})"
    word = "warning" if d.level == "warning" else ("resolved" if r.status == "resolved" else "quiet")
    return word + (f" ({md_escape(d.note, limit=120)})" if d.note else "")


def _detector_cell(r: SeriesResult) -> str:
    d = r.detection
    if d.fallback_from:
        return f"{md_escape(d.detector)} † (fallback from {md_escape(d.fallback_from)})"
    return md_escape(d.detector)


def _params(params: Mapping[str, Any]) -> str:
    if not params:
        return "default parameters"
    return ", ".join(f"{md_escape(k)}={md_escape(v)}" for k, v in sorted(params.items()))


# sections


def latest_ingest_text(ingest) -> str:
    """'syria.csv at 2026-11-24 13:55: 32,958 inserted, 0 updated, 0 rejected' (or 'none yet')."""
    if ingest is None:
        return "none yet"
    when = str(ingest.ingested_at)[:16].replace("T", " ")
    older = f"{ingest.older:,} older (kept the stored revision), " if ingest.older else ""
    return (
        f"{md_escape(Path(ingest.file).name)} at {when}: {ingest.inserted:,} inserted, "
        f"{ingest.updated:,} updated, {older}{ingest.rejected:,} rejected"
    )


def _header(result: RunResult) -> list[str]:
    out = [f"# Incident monitor — weekly report {md_escape(result.week)}", ""]
    if result.no_data_line:  # first of all: nothing in this week could be judged (issue 11)
        out += [
            f"> **⚠ NO DATA FOR THIS WEEK.** {md_escape(_sentence(result.no_data_line))} Every count below is missing, "
            "not zero: no series was judged, and alerts are held as they were.",
            "",
        ]
    if result.synthetic:
        out += [
            "> **⚠ SYNTHETIC DEMO DATA.** This report is built from generated demonstration data, calibrated to "
            "public figures; it does not describe real events and must not be used for decisions.",
            "",
        ]
    window = f"{_day(result.data_start)} to {_day(result.week_end)}" if result.data_start else "no data"
    # the latest ingest in the log, not "this run": a re-run that finds no new file
    # rewrites the same report byte for byte
    ingested = latest_ingest_text(result.last_ingest)
    detectors = "; ".join(f"{md_escape(n)} ({_params(p)})" for n, p in sorted(result.detectors.items())) or "none"
    out += [
        f"- **Week:** {md_escape(result.week)} ({week_dates(result)})",
        f"- **Data window:** weekly counts from {window}",
        f"- **Detectors:** {detectors}",
        f"- **Records in the database:** {result.records_total:,}",
        f"- **Latest ingest:** {ingested}",
        f"- **Latest event date:** {_day(result.latest_event_date)}",
        "",
    ]
    return out


def _key_messages(result: RunResult) -> list[str]:
    flagged = result.flagged
    out = ["## Key messages", ""]
    for r in flagged:
        d = r.detection
        sentence = (
            f"{_where(r)} rose to {observed_text(r, result)} this week against {fmt_num(d.expected)} "
            f"expected (threshold {fmt_num(d.threshold)}); {_status_words(r)}. {_before_text(r, result)}"
        )
        out.append(f"- {md_escape(sentence)}")
    if result.no_data_line:
        out.append("- Nothing was judged this week: no source's data reaches it (see the top of this report).")
    elif not flagged:
        out.append("- No monitored series rose above its threshold this week.")
    if result.no_data and not result.no_data_line:
        names = ", ".join(series_name(r) for r in result.results if r.series.key in result.no_data)
        reach = "; ".join(dict.fromkeys(result.no_data.values()))
        out.append("- " + md_escape(
            f"{_plural(len(result.no_data), 'series', 'series')} with no data for this week, not judged (missing, "
            f"not zero; their sources' data ends before the week: {reach}): {names}."
        ))  # fmt: skip
    checked = len(result.results)
    undecided = [r for r in result.results if r.detection.alarm is None]
    fallback = [r for r in result.results if r.detection.fallback_from]
    new = sum(1 for r in flagged if r.status == "new")
    summary = f"{_plural(checked, 'series', 'series')} checked: {len(flagged)} flagged"
    if flagged:
        summary += f" ({new} new, {len(flagged) - new} continuing)"
    warnings = result.warnings
    if warnings:
        summary += f", {len(warnings)} at the warning level"
    summary += f", {len(undecided)} undecided"
    if fallback:
        summary += f", {len(fallback)} checked with the nb-recent fallback because their detector lacked history"
    out.append(f"- {summary}.")
    resolved = [r for r in result.results if r.status == "resolved" and not r.detection.alarm]
    if resolved:
        out.append("- Back below threshold this week (resolved): " + ", ".join(md_escape(series_name(r)) for r in resolved) + ".")
    out += [f"- {md_escape(note)}" for note in result.notes]
    out += _filling_messages(result)
    problems = _problems_sentence(result)
    if problems:
        out.append(f"- {problems} (see Input problems).")
    if result.problems:
        names = ", ".join(dict.fromkeys(p.definition for p in result.problems))
        out.append("- " + md_escape(f"Configuration problems: {_plural(len(set(p.definition for p in result.problems)), '[[series]] definition')} "
                                    f"yielded no series ({names}); see Configuration problems."))  # fmt: skip
    line = _false_alert_line(result)
    if line:
        out.append(f"- {line}")
    out.append("")
    return out


def _about(x: float) -> str:
    """A rate to two significant digits, whole numbers from 10 up (0.032, 0.3, 1.4, 12)."""
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def _backtest_command(result: RunResult) -> str:
    from datetime import timedelta

    from monitor.weeks import week_label

    return f"`monitor backtest --from {week_label(result.week_start - timedelta(weeks=51))} --to {result.week}`"


def _false_alert_line(result: RunResult) -> str:
    """The false-alert figure of the key messages: measured by a stored backtest, or the nominal one, labelled so.

    Issue 11, item 4: a nominal rate from alpha is not what real conflict data gives; the
    report quotes a backtest of the same configuration when there is one.
    """
    measured, budget = result.measured_rate, result.false_alarms
    if measured is not None:
        n = len(result.results)
        return (
            f"False alerts: measured by `monitor backtest` over {measured.first_week}..{measured.last_week}: "
            f"{measured.outside_per100:.2f} alerts per 100 series-weeks outside surges, i.e. about "
            f"{_about(measured.per_week(n))} false alerts a week for these {n} series"
            + (f" (only {measured.weeks} weeks replayed: rough; see Method)." if measured.weeks < 26 else " (see Method).")
        )
    if budget is not None and budget.calibrated:
        return (
            f"Expected false alerts a week: {budget.expected_alerts:.2f}, a nominal figure from the detectors' alpha "
            f"({md_escape(budget.multiple_testing)}); on real data it is usually exceeded. Measure it with "
            f"{_backtest_command(result)} (see Method)."
        )
    return ""


def _false_alert_method(result: RunResult) -> str:
    """The Method section's false-alert sentences: the nominal budget, then what was measured or how to measure it."""
    from monitor.surges import RULE_TEXT

    parts = [] if result.false_alarms is None else [result.false_alarms.sentence()]
    m = result.measured_rate
    if m is not None:
        n = len(result.results)
        ran = f", run {m.ran_at:%Y-%m-%d}" if m.ran_at is not None else ""
        short = " (a short backtest: a rough figure)" if m.weeks < 26 else ""
        parts.append(
            f"Measured: `monitor backtest` of this configuration over {m.first_week}..{m.last_week} ({m.weeks} weeks, "
            f"{m.series} series, {m.series_weeks:,} series-weeks{ran}) gave {m.alerts_per100:.2f} alerts per 100 "
            f"series-weeks, {m.outside_per100:.2f} outside known surges ({RULE_TEXT}){short}; at that rate about "
            f"{_about(m.per_week(n))} false alerts a week are expected for the {n} series checked here. Warnings are "
            "not counted as alerts."
        )
    elif parts:
        parts.append(
            "These figures are nominal: they assume independent, calibrated p-values, and real conflict data "
            "(overdispersion, trends, reporting artefacts) usually gives more. "
            f"{_backtest_command(result)} measures the rate on this database; reports then state the measured rate."
        )
    return " ".join(parts)


LIKELY_MARK = "‡"


def _likely(r: SeriesResult) -> bool:
    """A warning only its nowcast raised: the week is likely to end above its threshold once reporting completes."""
    return r.detection.level == "warning" and "likely surge once reporting completes" in r.detection.note


def _filling(result: RunResult) -> bool:
    return any(not is_missing(r.detection.nowcast) for r in result.results)


def _nowcast_cell(r: SeriesResult) -> str:
    d = r.detection
    if is_missing(d.nowcast):
        return "–"
    return f"{fmt_num(d.nowcast)} ({fmt_num(d.nowcast_low)}–{fmt_num(d.nowcast_high)})"


def _filling_messages(result: RunResult) -> list[str]:
    """Key messages of a week still filling (issue 14): how much of it is in, and the likely surges."""
    out = []
    if result.nowcast_note:
        out.append(f"- {md_escape(_sentence(result.nowcast_note))}")
    filling = [r for r in result.results if not is_missing(r.detection.nowcast)]
    if not filling:
        return out
    share = filling[0].detection.complete_share
    likely = [r for r in result.results if _likely(r)]
    text = (f"This week is still filling: about {share:.0%} of a week's events are in the data by now (measured reporting "
            "delays, see monitor delays), so its counts are as reported so far and the Nowcast column gives where each is "
            "heading (90 % interval); the next run judges the week again.")  # fmt: skip
    if likely:
        text += (f" {_plural(len(likely), 'series', 'series')} {'is a warning' if len(likely) == 1 else 'are warnings'} only by "
                 f"{'its' if len(likely) == 1 else 'their'} nowcast ({LIKELY_MARK}, likely surge once reporting completes): "
                 + ", ".join(series_name(r) for r in likely) + ".")  # fmt: skip
    out.append(f"- {md_escape(text)}")
    return out


def _emerging_section(result: RunResult) -> list[str]:
    if not result.emerging:
        return []
    titles = {"new actor": "New actors", "new place": "New places", "more actors": "More armed actors than usual"}
    out = ["## New actors and places", "",
           "An armed actor violent in an admin1 for the first time in the period before (names compared without case, "
           "spacing, accents or a bracketed qualifier, with aliases such as IS = Islamic State), a place (admin2) with its "
           "first event in that period, and an admin1 with more distinct armed actors than in any week of it.", ""]  # fmt: skip
    for kind, title in titles.items():
        rows = [e for e in result.emerging if e.kind == kind]
        if rows:
            out += [f"**{title}**", ""] + [f"- {md_escape(e.detail)}" for e in rows[:30]]
            if len(rows) > 30:
                out.append(f"- … and {len(rows) - 30} more")
            out.append("")
    return out


def _map_section(map_file: str, unjoined: Sequence[str], settings: Any, problem: str = "") -> list[str]:
    if not map_file:
        return []
    out = ["## Map", "", f"![Events of the last four weeks and each admin1's level this week]({map_file})", ""]
    if problem:
        return out + [md_escape(f"The boundaries could not be used, so each admin1 is a bubble at the centroid of its events: "
                                f"{problem}"), ""]  # fmt: skip
    if not getattr(settings, "boundaries", ""):
        out += ["Each admin1 is a bubble at the centroid of its events (set report.boundaries to a GeoJSON or shapefile of "
                "admin1 areas to draw them); points are events of the last four weeks, sized by fatalities.", ""]
    else:
        out += ["Areas coloured by their series' highest level this week; points are events of the last four weeks, sized "
                "by fatalities.", ""]
    if unjoined:
        out += [md_escape(f"Not on the map (no area of that name in {Path(settings.boundaries).name}): {', '.join(unjoined)}; "
                          "set report.boundary_name_field, or use the boundaries' spelling in the data."), ""]
    return out


def _flagged_table(result: RunResult) -> list[str]:
    out = ["## Flagged series", ""]
    flagged = result.flagged
    if not flagged:
        return out + ["No series flagged this week.", ""]
    fdr = _fdr(result)
    filling = _filling(result)
    rows = []
    for rank, r in enumerate(flagged, 1):
        d = r.detection
        rows.append(
            [
                str(rank),
                md_escape(series_name(r)),
                fmt_num(d.observed),
                fmt_num(d.expected),
                fmt_num(d.threshold),
                fmt_score(d.score),
                fmt_p(d.pvalue),
                *([fmt_p(d.qvalue)] if fdr else []),
                *([_nowcast_cell(r)] if filling else []),
                *_figure_cells(r, result),
                str(r.weeks_in_alert),
                md_escape(r.status or "new"),
                md_escape(r.trend),
            ]
        )
    filling = _filling(result)
    header = ["#", "Series", "Observed", "Expected", "Threshold", "Exceedance score", "p-value", *(["q-value"] if fdr else []),
              *(["Nowcast (90 %)"] if filling else []), "Events (fatalities)", "Last week", "Year ago", "Weeks in alert",
              "Status", "Trend"]  # fmt: skip
    table = md_table(header, rows, "rlrrrrr" + ("r" if fdr else "") + ("r" if filling else "") + "rrrrlc")
    return out + table + ["", FIGURES_KEY, ""]


def _fdr(result: RunResult) -> bool:
    return result.false_alarms is not None and result.false_alarms.multiple_testing == "fdr"


def _warnings_table(result: RunResult) -> list[str]:
    warnings = result.warnings
    if not warnings:
        return []
    fdr = _fdr(result)
    out = [
        "## Warnings",
        "",
        "Above the looser warning level but not alerted (not emailed): worth a look, not yet a surge.",
        "",
    ]
    filling = _filling(result)
    rows = [
        [
            md_escape(series_name(r)) + (f" {LIKELY_MARK}" if _likely(r) else ""),
            fmt_num(r.detection.observed),
            fmt_num(r.detection.expected),
            fmt_num(r.detection.threshold),
            fmt_p(r.detection.pvalue),
            *([fmt_p(r.detection.qvalue)] if fdr else []),
            *([_nowcast_cell(r)] if filling else []),
            *_figure_cells(r, result),
            md_escape(r.trend),
            _detector_cell(r),
        ]
        for r in warnings
    ]
    header = ["Series", "Observed", "Expected", "Alert threshold", "p-value", *(["q-value"] if fdr else []),
              *(["Nowcast (90 %)"] if filling else []), "Events (fatalities)", "Last week", "Year ago", "Trend", "Detector"]  # fmt: skip
    out += md_table(header, rows, "lrrrr" + ("r" if fdr else "") + ("r" if filling else "") + "rrrcl")
    if any(_likely(r) for r in warnings):
        out += ["", f"{LIKELY_MARK} Likely surge once reporting completes: the count reported so far is below the alert "
                "threshold, but the nowcast of the week's final count ends above it with a chance of at least "
                "`[detection] nowcast_likely`; the next run judges the week again with the data it then has."]  # fmt: skip
    return out + [""]


def _glance_table(result: RunResult) -> list[str]:
    out = ["## At a glance", ""]
    if not result.results:
        return out + ["No series were monitored this week.", ""]
    filling = _filling(result)
    rows = [
        [
            md_escape(series_name(r)),
            fmt_num(r.detection.observed),
            fmt_num(r.detection.expected),
            *([_nowcast_cell(r)] if filling else []),
            *_figure_cells(r, result),
            _level(r),
            md_escape(r.trend),
            _glance_status(r, result.no_data),
            _detector_cell(r),
        ]
        for r in result.results
    ]
    header = ["Series", "This week", "Expected", *(["Nowcast (90 %)"] if filling else []), "Events (fatalities)", "Last week",
              "Year ago", "Level vs baseline", "Trend", "Status", "Detector"]  # fmt: skip
    out += md_table(header, rows, "lrr" + ("r" if filling else "") + "rrrlcll")
    out += ["", FIGURES_KEY]
    if any(r.detection.fallback_from for r in result.results):
        out += ["", "† The configured detector needs more history than this series has, so the nb-recent fallback was used instead."]
    return out + [""]


def _problems_sentence(result: RunResult) -> str:
    parts = []
    if result.refused:
        parts.append(f"{_plural(len(result.refused), 'input file')} refused")
    rows = sum(r.total for r in result.rejected)
    if rows:
        parts.append(f"{_plural(rows, 'row')} rejected in {_plural(len(result.rejected), 'file')}")
    return ("Input problems: " + " and ".join(parts)) if parts else ""


def _input_problems(result: RunResult) -> list[str]:
    """Files this run refused, and rows rejected by the files ingested since the previous week's run."""
    if not result.refused and not result.rejected:
        return []
    out = ["## Input problems", ""]
    if result.refused:
        out += ["Files refused (nothing was read from them; fix them and the next run reads them):", ""]
        out += [f"- {md_escape(line)}" for line in result.refused]
        out.append("")
    if result.rejected:
        out += ["Rows rejected (the other rows of each file were ingested; `monitor rejects --ingest ID` lists them all):", ""]
        rows = []
        for r in result.rejected:
            name = md_escape(Path(r.file).name)
            for line, reason in r.first:
                rows.append([str(r.ingest_id), name, str(line), md_escape(reason, limit=300)])
            if r.total > len(r.first):
                rows.append([str(r.ingest_id), name, "…", f"and {_plural(r.total - len(r.first), 'more row')}"])
        out += md_table(["Ingest", "File", "Line", "Reason"], rows, "rlrl")
        out.append("")
    return out


def _location(row: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for column in ("admin1", "admin2", "location"):
        value = row.get(column)
        text = "" if value is None or _isnan_safe(value) else str(value).strip()
        if text and text not in parts:
            parts.append(text)
    return " / ".join(parts)


def _isnan_safe(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _date_cell(value: Any) -> str:
    if value is None or _isnan_safe(value):
        return ""
    if hasattr(value, "date") and callable(value.date):
        try:
            return value.date().isoformat()
        except (ValueError, TypeError):  # NaT
            return ""
    return str(value)[:10]


def _join(*values: Any, sep: str) -> str:
    return sep.join(str(v).strip() for v in values if v is not None and not _isnan_safe(v) and str(v).strip())


def _source_cell(row: Mapping[str, Any]) -> str:
    """'ucdp 12345' linked to the record's public page when its source has one (monitor.formats.record_url: the
    address is built from a numeric id alone, never from the data's text), else the escaped text."""
    text = md_escape(_join(row.get("source"), row.get("source_id"), sep=" "))
    url = record_url(row.get("source"), row.get("source_id"))
    return f"[{text}]({url})" if url and text else text


def _incident_rows(r: SeriesResult, settings: Any) -> list[str]:
    frame = r.incidents
    # the pipeline gives every flagged series a frame (empty when its count comes from a
    # counts file); None only from a hand-built SeriesResult, and reads the same
    if frame is None or len(frame) == 0:
        return ["No incident records were found behind this week's count (a count from a pre-aggregated counts file "
                "has none).", ""]
    limit = int(getattr(settings, "max_incidents", 15))
    note_chars = int(getattr(settings, "note_chars", 240))
    records = frame.head(limit).to_dict("records") if limit > 0 else []
    shown, total = len(records), r.detection.observed
    out = []
    if r.series.metric == "events" and not is_missing(total) and total > shown:
        out.append(f"Showing the {shown} deadliest of {fmt_num(total)} events.")
    else:
        out.append(f"{_plural(shown, 'incident')}, deadliest first.")
    out.append("")
    rows = []
    for row in records:
        day, end = _date_cell(row.get("event_date")), _date_cell(row.get("date_end"))
        when = f"{day} to {end}" if end and day and end != day else day
        fatalities = row.get("fatalities")
        rows.append(
            [
                md_escape(when),
                md_escape(_location(row)),
                md_escape(_join(row.get("event_type"), row.get("sub_event_type"), sep=": ")),
                md_escape(_join(row.get("actor1"), row.get("actor2"), sep="; ")),
                fmt_num(fatalities, 0) if not is_missing(fatalities) else "NA",
                _source_cell(row),
                md_escape(row.get("notes"), limit=note_chars),
            ]
        )
    out += md_table(["Date", "Location", "Type", "Actors", "Fatalities", "Source", "Note"], rows, "llllrll")
    return out + [""]


def _flagged_details(result: RunResult, charts: Mapping[str, str], settings: Any) -> list[str]:
    flagged = result.flagged
    if not flagged:
        return []
    out = ["## Flagged series in detail", ""]
    for rank, r in enumerate(flagged, 1):
        d = r.detection
        name = md_escape(series_name(r))
        out += [f"### {rank}. {name}", ""]
        chart = charts.get(r.series.key)
        if chart:
            out += [f"![Weekly {metric_unit(r)}: {name}]({quote(str(chart).replace(os.sep, '/'))})", ""]
        detector = md_escape(d.detector) + (f" (fallback from {md_escape(d.fallback_from)})" if d.fallback_from else "")
        out += [
            f"{observed_text(r, result)} in {week_dates(result)} against {fmt_num(d.expected)} expected; "
            f"threshold {fmt_num(d.threshold)}, exceedance score {fmt_score(d.score)}, p-value {fmt_p(d.pvalue)} "
            f"({detector}). Status: {_status_phrase(r)}; trend {md_escape(r.trend)}."
            + (f" Alarmed by the rise over several weeks: {md_escape(d.why)}." if d.why else "")
            + _nowcast_sentence(r)
            + f" {_before_text(r, result)}",
            "",
        ]
        since = _since_annotations(r, result)
        out += [md_escape(line) for line in since] + ([""] if since else [])
        out += ["**Incidents behind the alarm**", ""] + _incident_rows(r, settings)
    return out


def _since_annotations(r: SeriesResult, result: RunResult) -> list[str]:
    """For each configured annotation (a dated event) inside the series' data and not after the reported week,
    the `monitor compare` sentence: the weeks from the event's week to the reported one against the 52 before."""
    import pandas as pd

    from monitor.compare import compare_counts, sentence

    counts = r.series.counts
    out = []
    for note in result.annotations:
        hits = counts.index[(counts.index <= pd.Timestamp(note.date)) & (counts.index > pd.Timestamp(note.date) - pd.Timedelta(days=7))]
        if not len(hits) or hits[0].date() > result.week_start:
            continue
        event_week = hits[0].date()
        after = (result.week_start - event_week).days // 7 + 1
        c = compare_counts(counts, event_week=event_week, before=52, after=after, key=r.series.key, name=series_name(r),
                           unit=r.series.metric, data_start=result.data_start)  # fmt: skip
        if c is not None and c.before_weeks >= 8:
            out.append(f"Since {note.label} ({note.date.isoformat()}): " + sentence(c, event=note.date.isoformat()))
    return out


def _nowcast_sentence(r: SeriesResult) -> str:
    """' Reporting of this week is still coming in: ...' for a week still filling (monitor.nowcast), else ''."""
    d = r.detection
    if is_missing(d.nowcast):
        return ""
    return (f" Reporting of this week is still coming in: about {d.complete_share:.0%} of a week's events are in the data "
            f"by now, so its final count is nowcast at {fmt_num(d.nowcast)} (90 % interval {fmt_num(d.nowcast_low)} to "
            f"{fmt_num(d.nowcast_high)}; shaded on the chart).")


def _method(result: RunResult) -> list[str]:
    out = ["## Method", ""]
    names = sorted(result.detectors) or sorted({r.detection.detector for r in result.results})
    for name in names:
        words = detector_method(name)
        out.append(f"- **{md_escape(name)}** ({_params(result.detectors.get(name, {}))}): {words}")
    out += [
        "- **Alarm**: this week's count is above the detector's threshold, i.e. higher than the series' own history "
        "makes normal. The exceedance score is (observed − expected) / (threshold − expected): above 1 means above "
        "the threshold. The p-value is the chance of a count at least this high if the baseline still held.",
        "- **Alert and warning**: an alert is an alarm at the detector's configured level (emailed to the watch "
        "team); a warning passes a looser rule (p-value at or below the warning level, or the detector's own "
        "looser band) and is only listed in this report.",
        "- **New / continuing / resolved**: new = first alarmed week; continuing = also alarmed the week before "
        "(weeks in alert counts the run of alarmed weeks); resolved = alarmed last week, not this week.",
        "- **Trend**: the series' count (events, or fatalities for a fatalities series) in the last 4 weeks against "
        "the 4 before: ↑ above +25 %, ↓ below −25 %, → otherwise or when both are 5 or fewer (as ACLED Trendfinder).",
        "- **Events and fatalities**: every series shows both figures of its week, \"8 events (14 fatalities)\", "
        "whatever it counts; a fatalities series is judged on its deaths (a single attack that kills dozens is a surge "
        "of its week even when the count of events barely moves). **Last week** is the week before; **Year ago** is "
        f"the week {YEAR_AGO_WEEKS} weeks earlier (the same ISO week a year before), a single week, not a mean; \"no "
        "data\" when the week is before the series' first incident.",
        "- **NA / undecided**: the detector could not compute a baseline (too little history, a model that did not "
        "fit); the series is neither flagged nor cleared, and the reason is given in the At a glance table.",
        "- **Fallback**: a series with too little history for its configured detector (Farrington needs 3 years) is "
        "checked with nb-recent instead (marked †; see above), from its first 5 weeks on.",
        "- **Floor**: no week with a count (events, or fatalities) below the series' `min_count` alerts or warns, "
        "whatever the detector.",
        "- **Ranking**: flagged series are listed strongest evidence first: the smaller of the week's p-value and, "
        "for a rise over several weeks, the p-value of those weeks' total.",
        "- **Late reports**: the most recent weeks may still grow as incidents are reported late or revised.",
    ]
    false_alarms = _false_alert_method(result)
    if false_alarms:
        # our own words; the only names in it are registered detector names and week labels
        out.append(f"- **False alarms**: {false_alarms}")
    out.append("")
    return out


def _alerts_section(result: RunResult) -> list[str]:
    """Where each alert stands (pending, firing, recovering, resolved, silenced) and the silences in force."""
    out = ["## Alerts and silences", ""]
    names = {r.series.key: series_name(r) for r in result.results}
    if result.alert_notes:
        out += ["| Series | Alert |", "|:---|:---|"]
        for key, text in sorted(result.alert_notes.items(), key=lambda kv: names.get(kv[0], kv[0])):
            out.append(f"| {md_escape(names.get(key, key))} | {md_escape(text)} |")
        out.append("")
    else:
        out += ["No series has an alert in progress.", ""]
    if result.silences:
        out += ["Active silences (their series are not emailed, but stay in this report):", "",
                "| # | Series filter | Until | Comment | Author |", "|---:|:---|:---|:---|:---|"]  # fmt: skip
        for s in result.silences:
            out.append(f"| {int(s.id)} | {md_escape(s.filter)} | {md_escape(s.until)} | {md_escape(s.comment)} | "
                       f"{md_escape(s.author)} |")  # fmt: skip
    else:
        out.append("No active silences.")
    out.append("")
    return out


def _config_problems(result: RunResult) -> list[str]:
    """[[series]] definitions that yielded no series this week and why: which filter value matched no
    incident, and the nearest values in the data (monitor.series.definition_problems)."""
    if not result.problems:
        return []
    out = ["## Configuration problems", "",
           "These [[series]] definitions yielded no series, so nothing they were meant to watch was checked; "
           "the other series were. Fix the config (the nearest values in the data are named) and run the week again.", ""]  # fmt: skip
    out += [f"- {md_escape(p.message)}" for p in result.problems]
    return out + [""]


def render_markdown(result: RunResult, *, charts: Mapping[str, str], settings: Any, map_file: str = "",
                    unjoined: Sequence[str] = (), map_problem: str = "") -> str:  # fmt: skip
    """The weekly report as Markdown.

    result: the run to render (nothing else is read; no clock; generated_at is not shown).
    charts: series key -> chart path relative to the report folder (flagged series).
    settings: report settings; reads `max_incidents` and `note_chars`.
    map_file: the map's path relative to the report folder ("" for none); unjoined: admin1 names of the
    data that joined no area of the boundaries file; map_problem: why the boundaries could not be used.
    """
    lines = (
        _header(result)
        + _key_messages(result)
        + _map_section(map_file, unjoined, settings, map_problem)
        + _flagged_table(result)
        + _warnings_table(result)
        + _emerging_section(result)
        + _alerts_section(result)
        + _glance_table(result)
        + _input_problems(result)
        + _config_problems(result)
        + _flagged_details(result, charts, settings)
        + _method(result)
    )
    return "\n".join(lines).rstrip("\n") + "\n"


# files
