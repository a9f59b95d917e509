"""Every error reaches the user as one line, `error: what was wrong — what to do`, with exit code 1;
the traceback only with `--debug` or COINFLEET_LOG_LEVEL=debug."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer 0.29 vendors click
from typer.exceptions import TyperException

from coinfleet.config import ENV_PREFIX, settings_error_message
from coinfleet.errors import CoinfleetError

DEBUG_FLAG = "--debug"


def debugging(argv: list[str]) -> bool:
    """Whether tracebacks were asked for, by flag or by log level (read raw: the settings may be the
    error)."""
    return DEBUG_FLAG in argv or os.environ.get(f"{ENV_PREFIX}LOG_LEVEL", "").strip().lower() == "debug"


def one_line(text: str) -> str:
    """A message collapsed onto one line."""
    return " ".join(text.split())


def message(exc: BaseException) -> str:
    """The one line to print for an exception that ended a command."""
    if isinstance(exc, UsageError):
        command = exc.ctx.command_path if exc.ctx is not None else "coinfleet"
        return f"{exc.format_message()} — see `{command} --help`"
    if isinstance(exc, TyperException):
        return exc.format_message()
    if isinstance(exc, CoinfleetError):
        return str(exc)
    if isinstance(exc, SettingsError) or (isinstance(exc, ValidationError) and exc.title == "Settings"):
        return settings_error_message(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename} — check the path and its permissions"
    if isinstance(exc, UnicodeDecodeError):
        return f"an input is not text ({exc.reason}) — give a CSV file"
    return (
        f"unexpected {type(exc).__name__}: {exc} — this is a bug; run again with --debug for the"
        " traceback and report it"
    )


def guarded(app: Callable[..., object], argv: list[str] | None = None) -> None:
    """Run the typer app on `argv` (default sys.argv); print any error as one line and exit 1, or 130
    on Ctrl-C. `--debug` may stand anywhere on the line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debugging(args)
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        code = app(args, prog_name="coinfleet", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except (KeyboardInterrupt, typer.Abort):
        if debug:
            raise
        sys.stderr.write("stopped\n")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {one_line(message(exc))}\n")
        sys.exit(1)
    if isinstance(code, int):
        sys.exit(code)
