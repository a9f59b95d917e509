"""Per-model settings: every knob an operator may change at run time, validated in one place."""

from __future__ import annotations

import functools
import json
import types
import typing
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coinfleet.constants import DEFAULT_ALERT_THRESHOLD, DEFAULT_WEIGHT
from coinfleet.errors import SettingError
from coinfleet.settings_text import accepted, shown

SendMode = Literal["all", "alerts_only", "positive_only", "negative_only"]
Seconds = Annotated[float, Field(ge=0, le=86_400)]
LogLimit = Annotated[int, Field(ge=0, le=1000)]


class ModelSettings(BaseModel):
    """Settings of one model (the predecessor's plus coinfleet's own); all editable without restart."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    #: p ≥ this → alert; 0.5 ≤ p < this → positive; p < 0.5 → negative
    alert_threshold: float = Field(default=DEFAULT_ALERT_THRESHOLD, ge=0.5, le=1.0)
    #: share of execution slots and evaluation quota under contention, relative to other models
    weight: float = Field(default=DEFAULT_WEIGHT, gt=0, le=1000)
    #: phases the model scores (None: all phases)
    phases: list[int] | None = None
    #: which coins the model scores
    coin_filter_mode: Literal["all", "whitelist", "blacklist"] = "all"
    coin_whitelist: list[str] = Field(default_factory=list)
    coin_blacklist: list[str] = Field(default_factory=list)
    #: a coin is scored at most once per this many seconds of data time
    min_scan_interval_seconds: Seconds = 20.0
    #: after a negative / positive / alert result the coin is ignored for this long (data time)
    ignore_bad_seconds: Seconds = 0.0
    ignore_positive_seconds: Seconds = 0.0
    ignore_alert_seconds: Seconds = 0.0
    #: most predictions stored per coin and tag (0 = unlimited)
    max_log_entries_negative: LogLimit = 0
    max_log_entries_positive: LogLimit = 0
    max_log_entries_alert: LogLimit = 0
    #: score every event, or only the newest per coin in a batch
    backlog_policy: Literal["every", "newest"] = "every"
    #: events older than this (seconds behind the newest event seen) are skipped and counted; None: never
    max_staleness_seconds: float | None = Field(default=None, gt=0)
    #: webhook delivery
    webhook_url: str | None = None
    webhook_enabled: bool = True
    send_modes: list[SendMode] = Field(default_factory=lambda: list[SendMode](["all"]))
    #: also send predictions suppressed by ignore windows or log limits
    send_ignored: bool = False
    #: runner limits
    batch_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    memory_limit_mb: int = Field(default=1024, ge=64, le=65_536)

    @field_validator("coin_whitelist", "coin_blacklist")
    @classmethod
    def _no_blank_mints(cls, mints: list[str]) -> list[str]:
        cleaned = [m.strip() for m in mints]
        if any(not m for m in cleaned):
            raise ValueError("coin ids must not be empty")
        return cleaned

    @field_validator("phases")
    @classmethod
    def _phases_score_something(cls, phases: list[int] | None) -> list[int] | None:
        if phases is None:
            return None
        if not phases:
            raise ValueError(
                "an empty phase list would stop the model from scoring anything; "
                "give phase ids (phases=1,2) or phases=none for every phase"
            )
        if any(p < 0 for p in phases):
            raise ValueError(f"phase ids are whole numbers from 0, not {phases}")
        return sorted(set(phases))

    @field_validator("webhook_url")
    @classmethod
    def _webhook_scheme(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook_url {url!r} must be an http:// or https:// URL with a host")
        return url.strip()

    @model_validator(mode="after")
    def _whitelist_needs_coins(self) -> ModelSettings:
        if self.coin_filter_mode == "whitelist" and not self.coin_whitelist:
            raise ValueError("coin_filter_mode=whitelist needs a non-empty coin_whitelist")
        if not self.send_modes:
            raise ValueError(
                "send_modes needs at least one of all, alerts_only, positive_only, negative_only"
            )
        return self

    @functools.cached_property
    def scan_interval(self) -> timedelta:
        """`min_scan_interval_seconds` as a timedelta (built once: the rules compare it per event)."""
        return timedelta(seconds=self.min_scan_interval_seconds)

    @functools.cached_property
    def reads_scan_cache(self) -> bool:
        """Whether a rule looks at what was scanned or stored before (the scan cache): a minimum scan
        interval, an ignore window or a log limit. Without one every scored event is stored."""
        return any(
            (
                self.min_scan_interval_seconds,
                self.ignore_bad_seconds, self.ignore_positive_seconds, self.ignore_alert_seconds,
                self.max_log_entries_negative, self.max_log_entries_positive, self.max_log_entries_alert,
            )
        )  # fmt: skip

    def public(self) -> dict[str, Any]:
        """Settings for display (the webhook secret is not a setting: it never appears here)."""
        return self.model_dump()


SETTING_KEYS: tuple[str, ...] = tuple(ModelSettings.model_fields)
#: what to type instead of `webhook_secret=…` (a secret on the command line stays in shell history)
SECRET_HINT = (
    "webhook_secret is not a setting: a secret typed on the command line stays in the shell history "
    "and the process list. Every model has a generated secret (`coinfleet alerts secret NAME --show`); "
    "to set your own, use `coinfleet alerts secret NAME --from-file PATH`, `--from-env VAR` or "
    "`--from-stdin`"
)


def key_summaries() -> list[str]:
    """One line per setting, made from the settings model's schema: key, type, range or choices, default
    (what `coinfleet models set --help` lists)."""
    defaults = ModelSettings().model_dump()
    properties = ModelSettings.model_json_schema()["properties"]
    return [f"{key}: {accepted(properties[key])}, default {shown(defaults[key])}" for key in SETTING_KEYS]


def _is_list_field(key: str) -> bool:
    annotation = ModelSettings.model_fields[key].annotation
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return any(typing.get_origin(option) is list for option in options)


def parse_value(key: str, raw: str) -> Any:
    """Turn the text of `KEY=VALUE` into a value pydantic can validate for that key."""
    text = raw.strip()
    if text.lower() in ("none", "null"):
        return None
    if not text:
        return [] if _is_list_field(key) else None
    if text[:1] in '[{"':
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingError(f"{key}: {raw!r} is not valid JSON ({exc.msg})") from exc
    if _is_list_field(key):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def apply_changes(current: ModelSettings, changes: dict[str, Any]) -> ModelSettings:
    """A new settings object with `changes` applied; SettingError on unknown keys or bad values."""
    return apply_to_stored(current.model_dump(), changes)


def apply_to_stored(stored: dict[str, Any], changes: dict[str, Any]) -> ModelSettings:
    """`changes` applied to settings as stored, which may no longer validate themselves (keys this
    version does not know are dropped, bad values must be among the changes to pass)."""
    if "webhook_secret" in changes:
        raise SettingError(SECRET_HINT)
    unknown = sorted(set(changes) - set(SETTING_KEYS))
    if unknown:
        raise SettingError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTING_KEYS)}")
    kept = {key: value for key, value in stored.items() if key in SETTING_KEYS}
    try:
        return ModelSettings.model_validate({**kept, **changes})
    except ValidationError as exc:
        raise SettingError(f"invalid setting: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """A validation error as one line: each bad setting and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
    )


def stored_settings(text: str) -> tuple[ModelSettings, str | None]:
    """Settings as stored (JSON), and None; or, when they no longer validate, the defaults and what is
    wrong with them (the model must not run on those defaults: see ModelRecord.settings_error)."""
    try:
        return ModelSettings.model_validate_json(text), None
    except ValidationError as exc:
        return ModelSettings(), f"stored settings no longer validate: {describe(exc)}"


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """Parse `KEY=VALUE` words from the command line."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if key == "webhook_secret":
            raise SettingError(SECRET_HINT)
        if not sep or not key:
            raise SettingError(f"{pair!r} is not KEY=VALUE")
        if key not in SETTING_KEYS:
            raise SettingError(f"unknown setting {key!r}; known: {', '.join(SETTING_KEYS)}")
        changes[key] = parse_value(key, raw)
    return changes
