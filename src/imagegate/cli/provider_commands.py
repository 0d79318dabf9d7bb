"""``imagegate providers``: the provider scorecard as a table, from
``GET /api/image/providers``: measured figures, the configured facts and the checklist's
overall score, one row per provider; the facts' notes follow the table."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from imagegate.cli.common import JsonOption, KeyOption, UrlOption, connect, echo_json, stdout

# The facts shown as columns, with their headings (the others are in the JSON).
FACT_COLUMNS = (
    ("compliance_comfort", "compliance"),
    ("data_retention", "retention"),
    ("commercial_terms", "terms"),
    ("support", "support"),
)
BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "red"}


def register(app: typer.Typer) -> None:
    """Attach the providers command to ``app``."""
    app.command("providers")(providers)


def providers(as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None) -> None:
    """The configured providers: breaker, success rate, latency, cost, the configured
    facts (1-5) and the overall 1-5 score. The figures cover the last 24 hours."""
    with connect(url, key) as client:
        listing = client.list_providers()
    if as_json:
        echo_json(listing)
        return
    stdout.print(_table(listing["data"]))
    notes = [
        (str(p["name"]), name, fact)
        for p in listing["data"]
        for name, fact in p.get("facts", {}).items()
        if fact.get("note")
    ]
    if notes:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for provider, name, fact in notes:
            grid.add_row(escape(provider), f"{name} {fact['score']}", escape(str(fact["note"])))
        stdout.print()
        stdout.print(grid)
    routing = listing.get("routing", {})
    if routing.get("min_compliance") is not None:
        stdout.print(f"\nthis workspace's minimum compliance: {routing['min_compliance']}")


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold underline")
    table.add_column("provider", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("breaker", no_wrap=True)
    for heading in ("calls", "success", "p50", "p95", "$/image", "moderated"):
        table.add_column(heading, justify="right", no_wrap=True)
    for _, heading in FACT_COLUMNS:
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("overall", justify="right", no_wrap=True, style="bold")
    for p in rows:
        card, facts = p["scorecard"], p.get("facts", {})
        state = str(p["breaker"]["state"])
        table.add_row(
            escape(str(p["name"])),
            escape(str(p["type"])),
            f"[{BREAKER_STYLE.get(state, '')}]{escape(state)}[/]",
            str(card["calls"]),
            _percent(card["success_rate"]),
            _ms(card["latency_ms"]["p50"]),
            _ms(card["latency_ms"]["p95"]),
            _usd(card["mean_cost_per_image_usd"]),
            _percent(card["moderation_rate"]),
            *(_points(facts.get(name)) for name, _ in FACT_COLUMNS),
            _score(p.get("overall", {}).get("score")),
        )
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _points(fact: dict[str, Any] | None) -> str:
    return "-" if fact is None else f"{fact['score']}/5"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/5"
