"""`coinfleet alerts …`: the webhook outbox — list alerts, retry dead ones, test a webhook URL."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from coinfleet.alerts import outbox
from coinfleet.alerts.delivery import send_test
from coinfleet.alerts.outbox import AlertRow, AlertState, Attempt
from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.config import Settings
from coinfleet.errors import CoinfleetError
from coinfleet.models import registry

app = typer.Typer(help="Webhook alerts: the outbox, retries and tests.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
STATES: dict[str, AlertState] = {"pending": "pending", "delivered": "delivered", "dead": "dead"}


@app.command("list")
def list_command(
    model: str | None = typer.Option(None, "--model", help="Only this model's alerts."),
    state: str | None = typer.Option(None, "--state", help="pending, delivered or dead."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Newest alerts shown."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest alerts with their delivery state."""
    wanted = _state(state)

    async def service(settings: Settings) -> list[AlertRow]:
        async with connection(settings) as conn:
            model_id = (await registry.get(conn, model)).id if model else None
            return await outbox.list_alerts(conn, model_id=model_id, state=wanted, limit=limit)

    rows = run(service)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
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
    console.print(table)


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
        async with connection(settings) as conn:
            if model is not None:
                record = await registry.get(conn, model)
                return await outbox.retry_dead(conn, record, settings.default_webhook_url)
            assert alert_id is not None
            model_id = await outbox.alert_model_id(conn, alert_id)
            if model_id is None:
                raise CoinfleetError(f"no alert with id {alert_id}; `coinfleet alerts list` shows the ids")
            record = await registry.get_by_id(conn, model_id)
            return await outbox.retry_alert(conn, record, alert_id, settings.default_webhook_url)

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
    """Send one signed sample alert (not queued, no retry) and show the answer."""

    async def service(settings: Settings) -> Attempt:
        record = None
        if model is not None:
            async with connection(settings) as conn:
                record = await registry.get(conn, model)
        return await send_test(settings, url, record)

    attempt = run(service)
    if as_json:
        print_json(asdict(attempt) | {"ok": attempt.ok})
    else:
        status = attempt.status_code if attempt.status_code is not None else "-"
        console.print(
            f"status {status}, {attempt.latency_ms:.0f} ms" + (f", {attempt.error}" if attempt.error else "")
        )
        if attempt.excerpt:
            console.print(attempt.excerpt, markup=False, highlight=False)
    if not attempt.ok:
        raise typer.Exit(1)
