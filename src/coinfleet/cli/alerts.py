"""`coinfleet alerts …`: the webhook outbox — list alerts, retry dead ones, test a webhook URL."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coinfleet.alerts import secrets
from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.config import Settings
from coinfleet.service import alerts
from coinfleet.service.schemas import MAX_PAGE_SIZE, Alert, AlertQuery, AlertState, WebhookTest

app = typer.Typer(help="Webhook alerts: the outbox, retries and tests.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
STATES: dict[str, AlertState] = {"pending": "pending", "delivered": "delivered", "dead": "dead"}


def _table(rows: list[Alert]) -> Table:
    table = Table("id", "model", "coin", "metric time", "tag", "state", "attempts", "last status", "error")
    for r in rows:
        table.add_row(
            str(r.id),
            r.model_name,
            r.mint,
            r.metric_ts.isoformat(timespec="seconds"),
            r.tag + (f" ({r.suppressed})" if r.suppressed else ""),
            r.state,
            str(r.attempts),
            "" if r.last_status is None else str(r.last_status),
            (r.last_error or "")[:60],
        )
    return table


@app.command("list")
def list_command(
    model: str | None = typer.Option(None, "--model", help="Only this model's alerts."),
    state: str | None = typer.Option(None, "--state", help="pending, delivered or dead."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Newest alerts shown."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest alerts with their delivery state."""
    first = AlertQuery(model=model, state=_state(state), limit=min(limit, MAX_PAGE_SIZE))

    async def service(settings: Settings) -> list[Alert]:
        shown: list[Alert] = []
        wanted = first
        async with connection(settings) as db:
            while True:
                page = await alerts.list_alerts(db, wanted)
                shown += page.items[: limit - len(shown)]
                if page.next_cursor is None or len(shown) == limit:
                    return shown
                wanted = wanted.model_copy(update={"cursor": page.next_cursor})

    rows = run(service)
    if as_json:
        print_json([r.model_dump() for r in rows])
    else:
        console.print(_table(rows))


def _state(state: str | None) -> AlertState | None:
    if state is None:
        return None
    if state in STATES:
        return STATES[state]
    raise typer.BadParameter(
        f"{state!r} is not a state; use pending, delivered or dead", param_hint="--state"
    )


@app.command()
def retry(
    alert_id: int | None = typer.Argument(None, metavar="[ID]", help="A dead alert's id."),
    model: str | None = typer.Option(None, "--model", help="With --dead: every dead alert of this model."),
    dead: bool = typer.Option(False, "--dead", help="With --model: retry all its dead alerts."),
) -> None:
    """Put dead alerts back in the queue, sent to the model's current webhook URL."""
    if (alert_id is None) == (model is None) or (model is not None and not dead):
        raise typer.BadParameter("give an alert ID, or --model NAME --dead")

    async def service(settings: Settings) -> int:
        async with connection(settings) as db:
            if model is not None:
                return await alerts.retry_dead_alerts(db, model, default_url=settings.default_webhook_url)
            assert alert_id is not None
            return await alerts.retry_alert(db, alert_id, default_url=settings.default_webhook_url)

    count = run(service)
    if alert_id is not None and count == 0:
        console.print(f"alert {alert_id} is not dead; nothing to retry")
        raise typer.Exit(1)
    console.print(f"{count} alert(s) queued again")


@app.command("test-webhook")
def send_test_webhook(
    url: str = typer.Argument(..., help="The webhook URL to POST a sample alert to."),
    model: str | None = typer.Option(None, "--model", help="Use this model's details and secret."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send one signed sample alert (not queued, no retry) and show the answer; signed with the
    model's secret with --model, else with a throwaway one."""

    async def service(settings: Settings) -> WebhookTest:
        if model is None:
            return await alerts.send_test_alert(settings, url)
        async with connection(settings) as db:
            return await alerts.send_test_alert(settings, url, db=db, model=model)

    attempt = run(service)
    if as_json:
        print_json(attempt.model_dump())
    else:
        status = attempt.status_code if attempt.status_code is not None else "-"
        console.print(
            f"status {status}, {attempt.latency_ms:.0f} ms" + (f", {attempt.error}" if attempt.error else "")
        )
        if attempt.excerpt:
            console.print(attempt.excerpt, markup=False, highlight=False)
    if not attempt.ok:
        raise typer.Exit(1)


@app.command()
def secret(
    model: str = typer.Argument(..., help="The model whose webhook signing secret to show or replace."),
    show: bool = typer.Option(False, "--show", help="Print the secret (to configure the receiver)."),
    generate: bool = typer.Option(False, "--generate", help="Replace it with a new random secret."),
    from_file: Path | None = typer.Option(None, "--from-file", help="Replace it with a file's first line."),
    from_env: str | None = typer.Option(None, "--from-env", help="Replace it with this variable's value."),
    from_stdin: bool = typer.Option(False, "--from-stdin", help="Replace it with the first line on stdin."),
) -> None:
    """Show or replace a model's webhook signing secret (never given on the command line itself)."""
    chosen = [show, generate, from_file is not None, from_env is not None, from_stdin]
    if sum(chosen) != 1:
        raise typer.BadParameter(
            "give exactly one of --show, --generate, --from-file, --from-env, --from-stdin"
        )

    async def service(settings: Settings) -> str:
        new = _new_secret(generate=generate, from_file=from_file, from_env=from_env, from_stdin=from_stdin)
        async with connection(settings) as db:
            if new is None:
                return await alerts.webhook_secret(db, model)
            await alerts.replace_webhook_secret(db, model, new)
            return new

    value = run(service)
    if show or generate:
        typer.echo(value)
    if not show:
        console.print(f"{model}: webhook secret replaced; the next attempt is signed with it")


def _new_secret(
    *, generate: bool, from_file: Path | None, from_env: str | None, from_stdin: bool
) -> str | None:
    """The replacement secret the options ask for; None when the secret is only shown."""
    if generate:
        return secrets.generate()
    if from_file is not None:
        return secrets.from_file(from_file)
    if from_env is not None:
        return secrets.from_env(from_env)
    return secrets.from_stdin() if from_stdin else None
