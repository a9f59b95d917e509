"""How a setting is described to people: the values it accepts (type, range or choices) and its default,
read from the pydantic model's JSON schema, so help texts and error messages never drift from the
validation itself. Used for the per-model settings (`models set --help`) and the process settings
(`COINFLEET_*` errors)."""

from __future__ import annotations

from typing import Any


def accepted(schema: dict[str, Any]) -> str:
    """What a field's JSON schema accepts, in words: `number > 0, <= 60`, `all|whitelist|blacklist`,
    `list of string`, `list of 3 values, each integer > 0`, `string or none`."""
    options = [accepted(option) for option in schema.get("anyOf", []) if option.get("type") != "null"]
    if options:
        return " or ".join(options) + " or none"
    if "enum" in schema:
        return "|".join(map(str, schema["enum"]))
    if "prefixItems" in schema:
        return _fixed_list(schema["prefixItems"])
    if schema.get("type") == "array":
        return f"list of {accepted(schema['items'])}"
    return " ".join(filter(None, (str(schema.get("type", "value")), _range(schema))))


def shown(value: Any) -> str:
    """A value as a person reads it: `none`, `true`, `0.7`, `a,b` (`empty` for an empty list)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "empty"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fixed_list(items: list[dict[str, Any]]) -> str:
    kinds = [accepted(item) for item in items]
    if len(set(kinds)) == 1:
        return f"list of {len(kinds)} values, each {kinds[0]}"
    return f"list of {len(kinds)} values: {', '.join(kinds)}"


def _range(schema: dict[str, Any]) -> str:
    low = shown(schema["minimum"]) if "minimum" in schema else None
    high = shown(schema["maximum"]) if "maximum" in schema else None
    if low is not None and high is not None:
        return f"{low}..{high}"
    above = f"> {shown(schema['exclusiveMinimum'])}" if "exclusiveMinimum" in schema else None
    return ", ".join(filter(None, (above, f">= {low}" if low else None, f"<= {high}" if high else None)))
