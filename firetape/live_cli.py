"""`firetape run --feed alpaca --broker alpaca-paper|alpaca-live [--live] --symbols ...`:
the shell around firetape.runtime.live. Every expected failure (a missing key, paper and
live mixed up, a refused stream) ends with one clear line and exit code 2."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click


def _fail(message: str) -> None:
    from firetape.cli import errors

    # soft_wrap: one line whatever the terminal width (greppable, testable)
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise SystemExit(2)


def parse_symbol_list(text: str | None) -> tuple[str, ...]:
    """"aapl, MSFT" -> ("AAPL", "MSFT"); at least one, no duplicates, order kept."""
    names = [s.strip().upper() for s in (text or "").split(",") if s.strip()]
    if not names:
        raise click.UsageError("--feed alpaca needs --symbols, e.g. --symbols AAPL,MSFT")
    return tuple(dict.fromkeys(names))


def check_combination(feed: str, broker: str, data: tuple[str, ...]) -> None:
    """The feed/broker pairs that exist; anything else is a usage error saying why."""
    if broker == "paper":
        raise click.UsageError("--feed alpaca trades through Alpaca: use --broker "
                               "alpaca-paper (or alpaca-live with --live); live bars into "
                               "the simulated paper broker are not supported yet")
    if feed != "alpaca":
        raise click.UsageError(f"--broker {broker} needs --feed alpaca (file bars are "
                               f"replayed through the simulated paper broker)")
    if data:
        raise click.UsageError("--data is for --feed files; --feed alpaca reads Alpaca's stream")


def run_live_command(feed, broker, live_flag, symbols, data, strategy, config_path, runs,
                     quiet, no_audit, *, carry_from=None, fresh=False) -> None:
    from connectors.alpaca.account import TradingRequest, requested_type
    from connectors.alpaca.credentials import MissingCredentialError, load_credentials
    from connectors.alpaca.errors import AccountMismatch, AlpacaError
    from firetape.cli import _load, console, errors
    from firetape.runtime.live import LiveSession
    from firetape.runtime.live_carryover import CarryOverError
    from firetape.runtime.live_lock import AccountBusy
    from firetape.runtime.live_setup import LiveRequest, connections

    check_combination(feed, broker, data)
    if carry_from and fresh:
        raise click.UsageError("--carry-from and --fresh exclude each other")
    names = parse_symbol_list(symbols)
    config = _load(config_path, strategy)
    request = LiveRequest(broker, live_flag, names,
                          carry_from=Path(carry_from) if carry_from else None, fresh=fresh)
    try:
        # Before the keys are even read: the flags and the config must agree.
        requested_type(TradingRequest(broker, live_flag, config.alpaca.account_type))
        credentials = load_credentials()
    except (AccountMismatch, MissingCredentialError) as exc:
        _fail(str(exc))
    session = LiveSession(config, request, credentials, connections(config, request, credentials),
                          Path(runs))

    async def main():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, session.stop.set)
        return await session.run()

    try:
        result = asyncio.run(main())
    except (AlpacaError, CarryOverError, AccountBusy) as exc:
        _fail(str(exc))
    if not no_audit:
        from firetape.audit.run_audit import write_run_audit

        write_run_audit(result.run_dir)
    if not quiet:
        console.print(f"run id   {result.run_id}")
        console.print(f"run dir  {result.run_dir}")
        previous = result.meta.get("live", {}).get("previous_run")
        console.print(f"carried  {previous or 'nothing (started flat)'}")
        console.print(f"inputs   {result.inputs:,} ({result.bars:,} bars), "
                      f"{result.submissions:,} order(s) sent to Alpaca")
        for topic, count in sorted(result.counts.items()):
            console.print(f"  {topic:<15} {count:,}")
        console.print(f"\nreplay it:  firetape replay {result.run_dir}")
    if result.dead_letters:
        errors.print(f"[yellow]warning:[/] {result.dead_letters} event(s) went to the "
                     f"dead-letter topic; see `firetape log inspect {result.run_dir} --topic dlq`")
