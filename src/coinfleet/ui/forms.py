"""The settings editor's logic: field texts in, a validated `ModelSettings` or per-field errors out.

Texts are parsed by the CLI's own `parse_value` and validated by the one `ModelSettings` model, so the
UI accepts exactly what `coinfleet models set KEY=VALUE` accepts. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError

from coinfleet.errors import SettingError
from coinfleet.models.settings import SETTING_KEYS, ModelSettings, SendMode, parse_value

Kind = Literal["text", "select", "multi", "switch"]


@dataclass(frozen=True, kw_only=True)
class Field:
    """How one setting is edited."""

    key: str
    label: str
    kind: Kind = "text"
    options: tuple[str, ...] = ()
    hint: str = ""


FIELDS: tuple[Field, ...] = (
    Field(key="alert_threshold", label="Alert threshold", hint="0.5–1: p ≥ this is an alert"),
    Field(key="weight", label="Weight", hint="share of execution slots and evaluation quota"),
    Field(key="phases", label="Phases", hint="comma-separated phase ids; empty: every phase"),
    Field(
        key="coin_filter_mode", label="Coin filter", kind="select", options=("all", "whitelist", "blacklist")
    ),
    Field(key="coin_whitelist", label="Whitelist", hint="coin ids, comma-separated"),
    Field(key="coin_blacklist", label="Blacklist", hint="coin ids, comma-separated"),
    Field(key="min_scan_interval_seconds", label="Min scan interval (s)"),
    Field(key="ignore_bad_seconds", label="Ignore after negative (s)"),
    Field(key="ignore_positive_seconds", label="Ignore after positive (s)"),
    Field(key="ignore_alert_seconds", label="Ignore after alert (s)"),
    Field(key="max_log_entries_negative", label="Max stored negatives per coin", hint="0: unlimited"),
    Field(key="max_log_entries_positive", label="Max stored positives per coin", hint="0: unlimited"),
    Field(key="max_log_entries_alert", label="Max stored alerts per coin", hint="0: unlimited"),
    Field(key="backlog_policy", label="Backlog policy", kind="select", options=("every", "newest")),
    Field(key="max_staleness_seconds", label="Max staleness (s)", hint="empty: never skip"),
    Field(key="webhook_url", label="Webhook URL", hint="empty: the default URL"),
    Field(key="webhook_enabled", label="Webhook enabled", kind="switch"),
    Field(key="send_modes", label="Send modes", kind="multi", options=get_args(SendMode)),
    Field(key="send_ignored", label="Send ignored predictions", kind="switch"),
    Field(key="batch_timeout_seconds", label="Batch timeout (s)"),
    Field(key="memory_limit_mb", label="Runner memory limit (MB)"),
)
assert {f.key for f in FIELDS} == set(SETTING_KEYS), "every setting has a field in the editor"


@dataclass(frozen=True, kw_only=True)
class FormResult:
    """The outcome of checking a filled-in form."""

    settings: ModelSettings | None  #: None when any field is wrong
    errors: dict[str, str] = field(default_factory=dict)  #: setting key (or "" for the form) → message
    changes: dict[str, Any] = field(default_factory=dict)  #: the parsed values of the changed fields

    @property
    def changed(self) -> tuple[str, ...]:
        """The keys of the changed fields, sorted."""
        return tuple(sorted(self.changes))


def display(settings: ModelSettings, key: str) -> Any:
    """The value a field shows for the current settings (texts for text fields)."""
    value = getattr(settings, key)
    kind = next(f.kind for f in FIELDS if f.key == key)
    if kind in ("switch", "multi", "select"):
        return list(value) if kind == "multi" else value
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parsed(key: str, raw: Any) -> Any:
    return parse_value(key, raw) if isinstance(raw, str) else raw


def check(current: ModelSettings, values: dict[str, Any]) -> FormResult:
    """Parse and validate the form's values against the current settings."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, raw in values.items():
        if raw == display(current, key):
            continue
        try:
            changes[key] = _parsed(key, raw)
        except SettingError as exc:
            errors[key] = str(exc)
    if errors:
        return FormResult(settings=None, errors=errors)
    try:
        settings = ModelSettings.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        return FormResult(settings=None, errors=_field_errors(exc))
    return FormResult(settings=settings, changes=changes)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """Each pydantic error under the field it is about; whole-model errors under the key they name."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        key = str(err["loc"][0]) if err["loc"] else _named_key(message)
        errors.setdefault(key, message)
    return errors


def service_error(message: str) -> tuple[str, str]:
    """(setting key, message) for an error the service raised while saving: one that starts with the
    setting it is about ("webhook_url: …", the sender's address check) goes under that field, without
    the prefix; anything else ("", message) goes under the form."""
    key, sep, rest = message.partition(": ")
    return (key, rest) if sep and key in SETTING_KEYS else ("", message)


def _named_key(message: str) -> str:
    named = [key for key in SETTING_KEYS if key in message]
    return named[-1] if named else ""
