"""TOML configuration → validated, frozen settings.

Every setting is declared once here, with its default and one line of help
(`Field(description=...)`); `config/monitor.toml` declares the same settings with the
same defaults, and a docs test checks that they agree. Unknown keys are errors that
suggest the nearest valid key; bad values name the key, the value and what is allowed.
The SMTP password is never read from this file: it comes from the environment
(alerts.smtp.password_env) or from a file only its owner can read (alerts.smtp.password_file).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError
from monitor.formats import FORMATS
from monitor.types import (
    DIMENSIONS,
    INCIDENT_FIELDS,
    Annotation,
    MultipleTesting,
    SeveritySettings,
)
from monitor.weeks import WEEKDAYS

#: Where `monitor` looks for a config when neither --config nor $MONITOR_CONFIG is given.
DEFAULT_CONFIG = Path("config/monitor.toml")
CONFIG_ENV = "MONITOR_CONFIG"


class _Settings(BaseModel):
    # strict: TOML has types, so "200" for a number or "yes" for a boolean is a mistake to report, not to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


#: A path written as TOML text (strict mode would accept only Path objects).
TextPath = Annotated[Path, Strict(False)]


class DatabaseSettings(_Settings):
    path: TextPath = Field(Path("monitor.db"), description="SQLite database file (relative paths: from the config file's folder)")


class GenericMapping(_Settings):
    """How to read a CSV that is neither ACLED nor UCDP: which column feeds which incident field."""

    name: str = Field(description="name of the mapping, used with --format generic and in messages")
    source: str = Field(description="source name stored with every record read through this mapping")
    match_header: list[str] = Field(description="auto-detect this mapping when a file's header equals this list (case-insensitive)")
    id_column: str = Field("", description="column holding a stable event id; empty: a hash of the row's content")
    date_column: str = Field(description="column holding the event date")
    date_format: str = Field("%Y-%m-%d", description="strptime format of date_column")
    columns: dict[str, str] = Field(default_factory=dict, description="incident field -> CSV column")
    constants: dict[str, str] = Field(default_factory=dict, description="incident field -> fixed value (e.g. country)")

    @field_validator("columns", "constants")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = [f for f in INCIDENT_FIELDS if f not in ("source", "source_id", "event_date", "revision")]
        for key in value:
            if key not in allowed:
                raise ValueError(f"'{key}' is not an incident field{_suggest(key, allowed)}; allowed: {', '.join(allowed)}")
        return value


class IngestSettings(_Settings):
    inbox: list[TextPath] = Field([Path("inbox")], description="folders `monitor run` scans for new incident files")
    patterns: list[str] = Field(["*.csv"], description="file name patterns picked up in the inbox folders")
    format: Literal[FORMATS] = Field("auto", description="input format: auto (from the header), acled, acled-legacy, acled-deletions, acled-aggregated, ucdp, ucdp-replaced, generic, counts")
    mappings: list[GenericMapping] = Field(default_factory=list, description="column mappings for generic CSV files")


class WeekSettings(_Settings):
    start: Literal[WEEKDAYS] = Field("monday", description="first day of the reporting week; labels are ISO weeks (2023-W07)")


class SeriesFilters(_Settings):
    """Which incidents a series counts; every listed condition must hold (lists mean 'any of')."""

    source: list[str] = Field(default_factory=list, description="keep these sources (acled, ucdp, ...)")
    country: list[str] = Field(default_factory=list, description="keep these countries")
    admin1: list[str] = Field(default_factory=list, description="keep these admin1 regions")
    admin2: list[str] = Field(default_factory=list, description="keep these admin2 districts")
    event_type: list[str] = Field(default_factory=list, description="keep these event types")
    sub_event_type: list[str] = Field(default_factory=list, description="keep these sub-event types")
    actor: list[str] = Field(default_factory=list, description="keep incidents where actor1 or actor2 is one of these (exact name, e.g. UCDP's IS)")
    actor_contains: list[str] = Field(default_factory=list, description="keep incidents where actor1 or actor2 contains one of these (case-insensitive); with `actor`, either may match")


class SeriesDefinition(_Settings):
    name: str = Field(description="short name, used in series keys (e.g. is_attacks/admin1=Homs)")
    title: str = Field("", description="human title shown in reports (default: the name)")
    group_by: list[Literal[DIMENSIONS]] = Field(default_factory=list, description="dimensions cutting the series: country, admin1, admin2, event_type, sub_event_type, actor")
    filters: SeriesFilters = Field(default_factory=SeriesFilters, description="which incidents are counted")
    metric: Literal["events", "fatalities"] = Field("events", description="count events or sum fatalities")
    detector: str = Field("farrington-cusum", description="detector for these series (see `monitor detectors`)")
    params: dict[str, Any] = Field(default_factory=dict, description="detector parameters overriding [detectors.<name>] for these series")
    rollup: bool = Field(True, description="also monitor the total over all groups")
    min_events: int = Field(10, ge=0, description="skip groups with fewer events than this in their whole history")
    min_count: int = Field(
        3, ge=0, description="no week with a count below this alerts or warns, whatever the detector (0: no floor; see README, 'min_count')"
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not value or any(c in value for c in "/|= "):
            raise ValueError("must be non-empty and contain no '/', '|', '=' or spaces")
        return value


class SmtpSettings(_Settings):
    host: str = Field("", description="SMTP server; empty: write the digest as an .eml file in the report folder")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 SSL, 25 plain)")
    security: Literal["starttls", "ssl", "none"] = Field("starttls", description="starttls, ssl or none")
    username: str = Field("", description="login name; empty: no login")
    password_env: str = Field("MONITOR_SMTP_PASSWORD", description="environment variable holding the SMTP password (never put it in this file)")
    password_file: str = Field(
        "", description="file holding the SMTP password, readable by its owner only (chmod 600); when set, used instead of password_env"
    )
    timeout: float = Field(30.0, gt=0, le=86400, allow_inf_nan=False, description="seconds before giving up on the server")
    data_timeout: float = Field(
        600.0, gt=0, allow_inf_nan=False, description="seconds to wait for the answer to the end of a message (RFC 5321: 10 minutes)"
    )
    deadline: float = Field(
        900.0, gt=0, allow_inf_nan=False, description="seconds one SMTP conversation may take in all; at least data_timeout"
    )

    @model_validator(mode="after")
    def _deadline_covers_data(self) -> "SmtpSettings":
        if self.deadline < self.data_timeout:
            raise ValueError(f"deadline ({self.deadline:g} s) is shorter than data_timeout ({self.data_timeout:g} s): "
                             "raise deadline or lower data_timeout")  # fmt: skip
        return self


#: What a route can be emailed: surges, emergences (new actors, new places, more actors), or one emergence kind.
AlertKind = Literal["surge", "emergence", "new-actor", "new-place", "more-actors"]


class RouteSettings(_Settings):
    """One recipient group: the series it follows, the lowest severity and the kinds of alert it is told about."""

    name: str = Field(..., description="route name, used in file names and logs (letters, digits, - and _)")
    recipients: list[str] = Field(..., min_length=1, description="addresses of this group")
    series: str = Field("", description="only series whose key or name contains this text (case-insensitive); empty: all")
    min_level: Literal["alert", "warning"] = Field("alert", description="lowest severity emailed to this group")
    kinds: list[AlertKind] = Field(
        ["surge"], min_length=1, description="alerts emailed to this group: surge, emergence (new-actor, new-place, more-actors, or one of them)"
    )

    @field_validator("name")
    @classmethod
    def _route_name(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]+", value or ""):
            raise ValueError("must be letters, digits, '-' or '_' (it names the .eml file)")
        return value


class AlertSettings(_Settings):
    enabled: bool = Field(True, description="send (or write) a digest when alerts start, escalate, are reminded or resolve")
    recipients: list[str] = Field(default_factory=list, description="watch-team addresses: the default route (every series)")
    min_level: Literal["alert", "warning"] = Field("alert", description="lowest severity emailed to `recipients`")
    kinds: list[AlertKind] = Field(
        ["surge", "emergence"], min_length=1,
        description="alerts emailed to `recipients`: surge, emergence (new-actor, new-place, more-actors, or one of them)",
    )
    routes: list[RouteSettings] = Field(
        default_factory=list, description="more recipient groups, each with a series filter and minimum severity"
    )
    sender: str = Field("incident-monitor@localhost", description="From: address")
    subject_prefix: str = Field("[incident-monitor]", description="start of every subject line")
    for_weeks: int = Field(1, ge=1, description="weeks a series must be flagged in a row before its alert fires (pending until then)")
    resolve_after_weeks: int = Field(2, ge=1, description="quiet weeks in a row before a firing alert is resolved (recovering until then)")
    repeat_weeks: int = Field(4, ge=1, description="a firing alert is reminded after this many weeks without a notice")
    send_resolved: bool = Field(True, description="email a notice when an announced alert resolves")
    group_by: str = Field("admin1", description="label the digest groups alerts by (a group_by dimension, or 'series')")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings, description="mail server")

    @model_validator(mode="after")
    def _recipients_when_sending(self) -> "AlertSettings":
        if self.enabled and self.smtp.host and not self.recipients and not self.routes:
            raise ValueError("recipients is empty but smtp.host is set: list at least one address (or add [[alerts.routes]])")
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names) or "default" in names:
            raise ValueError(f"route names must be unique and not 'default' (got {', '.join(names)})")
        return self


class ReportSettings(_Settings):
    folder: TextPath = Field(Path("reports"), description="where reports/<YYYY-Www>/ folders are written")
    history_weeks: int = Field(156, ge=104, description="weeks shown in each chart (at least two years)")
    lookback_weeks: int = Field(8, ge=1, le=52, description="past weeks re-checked to count weeks in alert and new/continuing status")
    max_incidents: int = Field(15, ge=0, description="incidents listed behind each flagged series")
    note_chars: int = Field(240, ge=20, description="notes are trimmed to this many characters")
    annotations: list[Annotation] = Field(default_factory=list, description='dated events drawn on charts, "YYYY-MM-DD label"')
    synthetic_data: bool = Field(False, description="say in every report that the data is synthetic (set by `monitor demo`)")
    boundaries: str = Field("", description="admin1 boundaries for the map: a GeoJSON file or an ESRI shapefile (e.g. OCHA's COD-AB); empty: admin1 bubbles at the centroid of their events")
    boundary_name_field: str = Field("", description="the boundaries' attribute holding the admin1 name (empty: ADM1_EN, admin1Name_en, NAME_1, shapeName, name, ... whichever is there)")
    boundary_pcode_field: str = Field("", description="the boundaries' attribute holding the admin1 p-code, joined when the data's admin1 is a p-code (e.g. ADM1_PCODE)")
    base_url: str = Field("", description="where the team opens the reports folder on the web, e.g. https://watch.example.org/reports; the digest links to <base_url>/<week>/report.html (empty: the page's path on this machine)")
    file_mode: str = Field("0644", description="permissions of the report files, octal (0644: the team can read them whatever the job's umask; folders get x where r is given)")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ValueError(f"'{value}' is not a web address of a folder: write it as https://host/path (http or https, no ? or #)")
        return value

    @field_validator("file_mode", mode="before")
    @classmethod
    def _check_file_mode(cls, value: Any) -> str:
        text = str(value).strip()
        if not isinstance(value, str):  # 644 or 0o644 in TOML: a number, whose digits are not what they seem
            raise ValueError(f"{value!r} is a number: write the mode as a string of octal digits, e.g. file_mode = \"0644\"")
        if not re.fullmatch(r"0?[0-7]{3}", text):
            raise ValueError(f"'{value}' is not an octal file mode: write three octal digits such as \"0644\" or \"0640\" (as a string)")
        if int(text, 8) & 0o600 != 0o600:
            raise ValueError(f"'{value}' would not let the job read and write its own reports: the owner needs 6 (e.g. \"0644\")")
        return text.zfill(4)

    @field_validator("annotations", mode="before")
    @classmethod
    def _parse_annotations(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        parsed = []
        for item in value:
            if isinstance(item, Annotation):
                parsed.append(item)
                continue
            text = str(item).strip()
            day, _, label = text.partition(" ")
            try:
                parsed.append(Annotation(date=date.fromisoformat(day), label=label.strip() or day))
            except ValueError:
                raise ValueError(f"'{text}' does not start with a date: write \"YYYY-MM-DD label\"") from None
        return parsed


class DetectionSettings(_Settings):
    multiple_testing: MultipleTesting = Field(
        SeveritySettings.multiple_testing, description="per-series: each series at its detector's alpha; fdr: Benjamini-Hochberg across the series of a run"
    )
    warning_alpha: float = Field(
        SeveritySettings.warning_alpha, gt=0, lt=1, allow_inf_nan=False, description="per-series: a warning when the p-value is at or below this (alerts use each detector's alpha)"
    )
    fdr: float = Field(SeveritySettings.fdr, gt=0, lt=1, allow_inf_nan=False, description="fdr: false discovery rate of alerts")
    warning_fdr: float = Field(SeveritySettings.warning_fdr, gt=0, lt=1, allow_inf_nan=False, description="fdr: false discovery rate of warnings (at least fdr)")
    workers: int = Field(0, ge=0, le=64, description="processes for detection and charts of large runs: 0 = one per CPU core, 1 = this process only")
    engine: Literal["local", "dask"] = Field(
        "local", description="where detection groups run: local (this machine's processes, see workers) or dask (a Dask cluster; "
        "pip install 'incident-monitor[scale]')",
    )  # fmt: skip
    scheduler: str = Field(
        "", description="engine = dask: the Dask scheduler's address (tcp://10.0.0.5:8786); empty: a local Dask cluster of `workers` processes"
    )
    nowcast_likely: float = Field(
        0.5, gt=0, lt=1, allow_inf_nan=False,
        description="a week still filling whose reported count is below its threshold is a warning (\"likely surge once reporting "
        "completes\") when the chance that its final count ends above the threshold is at least this",
    )  # fmt: skip

    @field_validator("scheduler")
    @classmethod
    def _address(cls, value: str) -> str:
        text = value.strip()
        if text and not re.fullmatch(r"(?:(?:tcp|tls|ws|wss|ucx)://)?\[?[\w.:-]+?\]?:\d{1,5}", text):
            raise ValueError(f"'{value}' is not a Dask scheduler address: write tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786), or leave it empty")
        return text

    @model_validator(mode="after")
    def _warning_looser(self) -> "DetectionSettings":
        if self.warning_fdr < self.fdr:
            raise ValueError(f"warning_fdr ({self.warning_fdr:g}) must be at least fdr ({self.fdr:g}): warnings are the looser level")
        return self

    @model_validator(mode="after")
    def _engine_usable(self) -> "DetectionSettings":
        if self.scheduler and self.engine != "dask":
            raise ValueError(f"scheduler = {self.scheduler!r} is set but engine = {self.engine!r}: set engine = \"dask\" to use the cluster, or empty scheduler")
        if self.engine == "dask":
            import importlib.util

            if importlib.util.find_spec("distributed") is None:  # found without importing it (start-up time)
                raise ValueError("engine = \"dask\" needs Dask distributed, which is not installed: pip install 'incident-monitor[scale]' "
                                 "(or pip install 'dask[distributed]'), or set engine = \"local\"")  # fmt: skip
        return self

    @property
    def severity(self):
        """The same settings as the pure `monitor.severity.SeveritySettings`."""
        return SeveritySettings(
            multiple_testing=self.multiple_testing, warning_alpha=self.warning_alpha, fdr=self.fdr, warning_fdr=self.warning_fdr
        )


class ScheduleSettings(_Settings):
    cron: str = Field("0 6 * * wed", description="when `monitor schedule` runs the weekly job (minute hour day month weekday)")
    timezone: str = Field("UTC", description="time zone of the cron expression (IANA name)")
    catch_up_weeks: int = Field(
        8, ge=1, le=520,
        description="after downtime, run at most this many missed weeks (the latest), oldest first; 1: only the last week",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError("needs 5 fields: minute hour day month weekday, e.g. '0 6 * * mon'")
        if any(ch.isdigit() for ch in fields[4]):
            raise ValueError(
                "write weekdays as names (mon..sun): APScheduler 3 numbers them from Monday = 0, cron from Sunday = 0"
            )
        if fields[2] != "*" and fields[4] != "*":
            # APScheduler 3 fires when day AND weekday match; cron fires when either does
            raise ValueError(
                f"gives both a day of the month ('{fields[2]}') and a weekday ('{fields[4]}'): cron runs when either matches, "
                "APScheduler only when both do, so weeks would be skipped; keep one of them and write '*' for the other"
            )
        from datetime import datetime, timezone

        from monitor.cron import parse_cron

        trigger = parse_cron(value)  # ValueError naming the bad field
        start = datetime(2000, 1, 1, tzinfo=timezone.utc)
        if trigger.get_next_fire_time(None, start) is None:
            raise ValueError(f"never fires (no date matches '{value}'), so the weekly job would never run")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone (e.g. UTC, Europe/Berlin, Asia/Damascus)") from None
        return value


#: Kinds of `[[sources]]` and the public address each fetches from by default.
SOURCE_KINDS: dict[str, str] = {
    "inbox": "",
    "acled-api": "https://acleddata.com",
    "ucdp-api": "https://ucdpapi.pcr.uu.se",
    "http-csv": "",
}


class SourceSettings(_Settings):
    """One place data comes from by itself (issue 15): `monitor fetch` pulls what is new since its last fetch."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]+$", description="source name, used in messages, `monitor fetch NAME` and the vintages folder (letters, digits, - and _)")
    kind: Literal[tuple(SOURCE_KINDS)] = Field(..., description="inbox (folders of files), acled-api, ucdp-api or http-csv")
    url: str = Field("", description="the service's address (default: the public one of its kind; http-csv: the file's URL, required)")
    timeout: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False, description="seconds to wait for each response")
    # acled-api
    email: str = Field("", description="acled-api: the account's email address")
    password_env: str = Field("ACLED_PASSWORD", description="acled-api: environment variable holding the account's password (never put it in this file)")
    password_file: str = Field("", description="acled-api: file holding the password, readable by its owner only (chmod 600); when set, used instead of password_env")
    countries: list[str] = Field(default_factory=list, description="acled-api: country names; ucdp-api: Gleditsch-Ward country codes")
    regions: list[str] = Field(default_factory=list, description="acled-api: ACLED region numbers (e.g. 11 for the Middle East)")
    event_types: list[str] = Field(default_factory=list, description="acled-api: ACLED event types (empty: all)")
    start: str = Field("", description="acled-api, ucdp-api: first event date fetched, YYYY-MM-DD (later fetches: only what is new)")
    # ucdp-api
    dataset: Literal["gedevents", "candidate"] = Field("gedevents", description="ucdp-api: gedevents (yearly GED release) or candidate (monthly Candidate events)")
    version: str = Field("", description="ucdp-api: the dataset version, e.g. 25.1 (GED) or 25.0.9 (Candidate)")
    token_env: str = Field("UCDP_TOKEN", description="ucdp-api: environment variable holding the API access token")
    token_file: str = Field("", description="ucdp-api: file holding the access token, readable by its owner only")
    # inbox
    folders: list[TextPath] = Field(default_factory=list, description="inbox: folders scanned for new files (default: [ingest] inbox)")

    @model_validator(mode="after")
    def _complete(self) -> "SourceSettings":
        if self.kind == "http-csv" and not self.url:
            raise ValueError(f"source {self.name!r} (http-csv) needs a url: the address of the file to fetch")
        if self.kind == "acled-api" and not self.email:
            raise ValueError(f"source {self.name!r} (acled-api) needs email: the ACLED account's address "
                             f"(its password comes from ${self.password_env} or password_file)")  # fmt: skip
        if self.kind == "ucdp-api" and not self.version:
            raise ValueError(f"source {self.name!r} (ucdp-api) needs version, e.g. 25.1 for GED or 25.0.9 for Candidate events")
        if self.url:
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(self.url)
                usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            except ValueError:
                usable = False
            if not usable or any(ord(c) < 33 for c in self.url):
                raise ValueError(f"source {self.name!r}: url {self.url!r} is not an http:// or https:// address with a host")
        if self.start:
            try:
                date.fromisoformat(self.start)
            except ValueError:
                raise ValueError(f"source {self.name!r}: start {self.start!r} is not a date YYYY-MM-DD") from None
        return self

    @property
    def address(self) -> str:
        """The url, or the public address of the kind."""
        return (self.url or SOURCE_KINDS[self.kind]).rstrip("/")


class EmergingSettings(_Settings):
    weeks: int = Field(52, ge=4, le=520, description="an actor, place or count of actors is new when not seen in this many weeks before (twelve months)")
    aliases: dict[str, str] = Field(default_factory=dict, description='actor names read as another (e.g. {"ISIS" = "Islamic State"}); IS, ISIS, ISIL and Daesh are Islamic State already')
    alerts: bool = Field(True, description="email them as alerts of kind emergence to the routes that take it (alerts.kinds); false: in the report only")


class FetchSettings(_Settings):
    folder: TextPath = Field(Path("vintages"), description="where each fetch is stored as a file before it is ingested (one folder per source)")
    retries: int = Field(4, ge=0, le=20, description="retries of a request after a timeout, a dropped connection, 429 or 5xx")
    backoff: float = Field(2.0, ge=0, le=600, allow_inf_nan=False, description="seconds before the first retry, doubling each time")
    max_wait: float = Field(300.0, ge=0, le=3600, allow_inf_nan=False, description="longest wait a 429's Retry-After is honoured for; a longer one ends the fetch")


class Config(_Settings):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="the SQLite store")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="incident files and how to read them")
    week: WeekSettings = Field(default_factory=WeekSettings, description="reporting weeks")
    series: list[SeriesDefinition] = Field(default_factory=list, description="the series to monitor")
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict, description="detector name -> default parameters")
    detection: DetectionSettings = Field(default_factory=DetectionSettings, description="alert and warning levels, false-alarm control")
    report: ReportSettings = Field(default_factory=ReportSettings, description="weekly report")
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="email digest")
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings, description="`monitor schedule`")
    sources: list[SourceSettings] = Field(default_factory=list, description="where data comes from by itself (`monitor fetch`)")
    fetch: FetchSettings = Field(default_factory=FetchSettings, description="how fetched data is kept and requests retried")
    emerging: EmergingSettings = Field(default_factory=EmergingSettings, description="new actors and places in the report")
    #: folder relative paths are resolved against (the config file's folder); not a TOML key
    base_dir: Path = Field(Path("."), exclude=True, description="(internal) folder of the config file")
    #: each [[series]] definition's (detector, validated parameters), and the fallback's: resolved once,
    #: when the config loads (`config_from_dict`), and carried by the run from there
    _models: dict[str, tuple[str, Any]] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        """Equal settings (the cache of resolved models is not a setting)."""
        return isinstance(other, Config) and self.__dict__ == other.__dict__

    __hash__ = None  # a config holds dicts and lists: not hashable, as before

    @model_validator(mode="after")
    def _unique_sources(self) -> "Config":
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"[[sources]] name {dupes[0]!r} is used twice: each source needs its own name")
        return self

    def secret(self, source: SourceSettings) -> SecretStr | None:
        """The password (acled-api) or access token (ucdp-api) of a source: from its file if set, else its
        environment variable; None when not set. ConfigError as `smtp_password` for a bad file."""
        file, env = (source.password_file, source.password_env) if source.kind == "acled-api" else (source.token_file, source.token_env)
        if file:
            return SecretStr(read_password_file(self.path(Path(file))))
        value = os.environ.get(env)
        return SecretStr(value) if value else None

    @model_validator(mode="after")
    def _unique_series(self) -> "Config":
        names = [s.name for s in self.series]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"series names must be unique; repeated: {', '.join(dupes)}")
        return self

    def path(self, value: Path) -> Path:
        """Resolve a configured path against the config file's folder."""
        return value if value.is_absolute() else (self.base_dir / value)

    @property
    def db_path(self) -> Path:
        return self.path(self.database.path)

    @property
    def report_folder(self) -> Path:
        return self.path(self.report.folder)

    @property
    def report_settings(self) -> ReportSettings:
        """Report settings with the folder resolved (what the report module receives)."""
        boundaries = str(self.path(Path(self.report.boundaries))) if self.report.boundaries else ""
        return self.report.model_copy(update={"folder": self.report_folder, "boundaries": boundaries})

    def smtp_password(self) -> SecretStr | None:
        """The SMTP password (None: not set), from alerts.smtp.password_file if set, else the environment.

        Wrapped so that it prints as '**********' (repr, str, tracebacks that show locals); only
        the mail module reveals it, to log in. Raises ConfigError (one line, naming the file and
        the fix) when the file is missing, empty, or readable by group or others.
        """
        smtp = self.alerts.smtp
        if smtp.password_file:
            return SecretStr(read_password_file(self.path(Path(smtp.password_file))))
        value = os.environ.get(smtp.password_env)
        return SecretStr(value) if value else None

    def params_for(self, detector: str, *, series_params: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> Any:
        """A detector's validated parameters: [detectors.<name>], then a series' params, then overrides (--param)."""
        from monitor.detectors import make_params

        return make_params(detector, {**self.detectors.get(detector, {}), **(series_params or {}), **(overrides or {})})

    def detector_params(self, definition: SeriesDefinition) -> tuple[str, Any]:
        """(detector name, validated parameters) of a series definition: [detectors.<name>], then its params.
        Validated on the first call (when the config loads) and kept: the parameters are frozen models."""
        got = self._models.get(definition.name)
        if got is None or got[0] != definition.detector:
            got = self._models[definition.name] = (definition.detector, self.params_for(definition.detector, series_params=definition.params))
        return got

    def fallback_params(self) -> Any:
        """The parameters of the short-history fallback (`monitor.detectors.FALLBACK`), with [detectors.<name>]."""
        from monitor.detectors import FALLBACK

        got = self._models.get("\x00fallback")
        if got is None:
            got = self._models["\x00fallback"] = (FALLBACK, self.params_for(FALLBACK))
        return got[1]


def load_config(path: Path | str | None = None, *, db: Path | str | None = None) -> Config:
    """Read and validate a config file.

    path: the TOML file; None means $MONITOR_CONFIG, else ./config/monitor.toml if it
        exists, else built-in defaults (paths relative to the current folder).
    db: overrides database.path (the global --db option).
    """
    if path is None and os.environ.get(CONFIG_ENV):
        path = os.environ[CONFIG_ENV]
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    raw: dict[str, Any] = {}
    base = Path.cwd()
    label = "built-in defaults"
    if path is not None:
        path = Path(path)
        label = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found (give --config PATH or set ${CONFIG_ENV})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            where = re.search(r" \(at line (\d+), column (\d+)\)$", str(exc))
            problem = str(exc)[: where.start()] if where else str(exc)
            place = f" line {where.group(1)}, column {where.group(2)}:" if where else ""
            raise ConfigError(f"{path}:{place} not valid TOML: {problem} (TOML syntax: https://toml.io)") from None
        except RecursionError:
            raise ConfigError(f"{path}: not a usable config: tables or arrays nested too deeply to read") from None
        except ValueError as exc:  # an integer of thousands of digits (Python's limit on int conversion)
            what = "an integer with thousands of digits; no setting takes a number that large" if "digits" in str(exc) else str(exc)
            raise ConfigError(f"{path}: not a usable config: {what}") from None
        base = path.resolve().parent
    return config_from_dict(raw, base_dir=base, db=db, label=label)


def config_from_dict(raw: dict[str, Any], *, base_dir: Path, db: Path | str | None = None, label: str = "config") -> Config:
    """Validate a config mapping (as read from TOML); `label` names it in error messages."""
    _refuse_password(raw, label)
    internal = [name for name, field in Config.model_fields.items() if field.exclude and name in raw]
    if internal:  # not a setting: it would be overwritten silently
        raise ConfigError(f"{label}: unknown key '{internal[0]}'; valid keys: {', '.join(_fields_at(Config, []))}")
    try:
        config = Config.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, raw, label)) from None
    for name, values in config.detectors.items():
        from monitor.detectors import make_params

        try:
            make_params(name, values)
        except Exception as exc:  # DetectorError carries the detail
            raise ConfigError(f"{label}: [detectors.{name}]: {exc}") from None
    for definition in config.series:  # resolved here, once: the run reuses these models
        try:
            config.detector_params(definition)
        except Exception as exc:
            raise ConfigError(f"{label}: series '{definition.name}': {exc}") from None
    config.fallback_params()
    if db is not None:
        config = config.model_copy(update={"database": DatabaseSettings(path=Path(db).resolve())})
    return config


def _refuse_password(raw: dict[str, Any], label: str) -> None:
    smtp = raw.get("alerts", {}).get("smtp", {}) if isinstance(raw.get("alerts"), dict) else {}
    if isinstance(smtp, dict) and "password" in smtp:
        env = smtp.get("password_env", "MONITOR_SMTP_PASSWORD")
        raise ConfigError(
            f"{label}: alerts.smtp.password: the password is never read from the config file; remove it and set the "
            f"environment variable {env} (alerts.smtp.password_env) or name a file only you can read "
            "(alerts.smtp.password_file, chmod 600)"
        )


def read_password_file(path: Path) -> str:
    """The password in `path` (its first line), refusing a file that group or others may read (ConfigError).

    The mode is checked on the opened file (fstat), so the file read is the file checked.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"{path}: alerts.smtp.password_file does not exist (write the password into it, then chmod 600 {path})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read alerts.smtp.password_file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: alerts.smtp.password_file is not a regular file")
        if mode & 0o077:
            raise ConfigError(
                f"{path}: alerts.smtp.password_file can be read by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"run chmod 600 {path}"
            )
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: alerts.smtp.password_file is not UTF-8 text") from None
    password = text.split("\n", 1)[0].rstrip("\r")  # one line; the newline an editor adds is not part of it
    if not password:
        raise ConfigError(f"{path}: alerts.smtp.password_file is empty (the password goes on its first line)")
    return password


#: pydantic error type -> what the key expects, for a value of the wrong TOML type.
_EXPECTED = {
    "int_type": "an integer (a whole number)",
    "int_parsing": "an integer (a whole number)",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text in quotes",
    "list_type": 'a list, e.g. ["a", "b"] (or [[...]] blocks)',
    "dict_type": "a table ([section] or { key = value })",
    "model_type": "a table ([section] or { key = value })",
    "model_attributes_type": "a table ([section] or { key = value })",
    "path_type": "a path in quotes",
    "date_type": "a date (YYYY-MM-DD)",
}

#: pydantic error type -> the rule the value broke (ctx holds the limit).
_LIMITS = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "too_short": "must have at least {min_length} item(s)",
    "finite_number": "must be a finite number",
}


def _explain(exc: ValidationError, raw: dict[str, Any], label: str) -> str:
    """One line per problem: the key, the value and what is allowed."""
    lines = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if p != "base_dir"]
        key = _dotted(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"{label}: unknown key '{key}'{_suggest(str(loc[-1]), _fields_at(Config, loc[:-1]))}")
            continue
        if kind == "missing":
            lines.append(f"{label}: '{key}' is required")
            continue
        value = _value_at(raw, loc)
        secret = any(str(part).startswith("password") for part in loc)  # a password typed in the wrong key: not echoed
        if kind in _EXPECTED:
            got = "" if value is _MISSING or secret else f", got {_toml_value(value)}"
            unquote = " (write it without quotes)" if _quoted(value, kind) and not secret else ""
            lines.append(f"{label}: {key}: expected {_EXPECTED[kind]}{got}{unquote}")
            continue
        if kind in _LIMITS:
            message = _LIMITS[kind].format(**error.get("ctx", {}))
        elif kind == "literal_error":
            message = "expected " + error["msg"].removeprefix("Input should be ")
        else:
            message = error["msg"].removeprefix("Value error, ")
        # a table-wide rule (e.g. alerts: recipients vs smtp.host) names the table, not its whole content
        shown = f" = {value!r}" if value is not _MISSING and not isinstance(value, (dict, list)) and not secret else ""
        lines.append(f"{label}: {key}{shown}: {message}")
    return "\n".join(lines)


def _quoted(value: Any, kind: str) -> bool:
    """A number or boolean written in quotes ("200", "true"): the fix is to drop the quotes."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if kind.startswith("bool"):
        return text in ("true", "false")
    try:
        number = float(text)
    except ValueError:
        return False
    return kind.startswith("float") or number.is_integer()


def _toml_value(value: Any) -> str:
    """A value as the user wrote it, or what it is when it is a whole table or list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_MISSING = object()


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _value_at(raw: Any, loc: list[Any]) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return raw


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """Valid key names at a location of the config tree (for suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        current = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if current is None:
            return []
    return [name for name, field in getattr(current, "model_fields", {}).items() if not field.exclude]


def _suggest(word: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if match:
        return f" (did you mean '{match[0]}'?)"
    return f"; valid keys: {', '.join(candidates)}" if candidates else ""


def iter_settings(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every declared setting as (dotted key, default, help), for docs and the docs test."""
    out = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(iter_settings(annotation, f"{key}."))
        else:
            default = field.get_default(call_default_factory=True)
            out.append((key, default, field.description or ""))
    return out
