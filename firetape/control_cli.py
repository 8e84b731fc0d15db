"""`firetape control ...`: an operator's commands, to a live session or to the Kafka agents.

    firetape control kill-switch engage|release --reason TEXT
    firetape control release-halt --reason TEXT          # a drawdown or daily-loss halt
    firetape control set-limit NAME VALUE                # e.g. max_gross_exposure 0.2
    firetape control disable-strategy|enable-strategy NAME
    firetape control ack-reconciliation --run-dir RUN    # a live start's differences
    firetape control strategy-points                     # Kafka: where strategy commands took effect

Each command is one control event (schemas/control.py), stamped with the operator's name
and the wall-clock time it was given (an outside input: a replay reads it from the log).
Where it goes:

* `--run-dir RUN`: the live session writing RUN. A session owns its event log, so the
  command is appended to the run's control inbox (connectors/alpaca/inbox.py) and enters
  the log as an input when the session reads it, within a fraction of a second.
* otherwise the `control` topic of the Kafka cluster (KAFKA_BOOTSTRAP, else the local
  broker; `--prefix` for a namespace), which every Kafka agent reads.

A wrong limit name or value is refused here, before anything is sent: the risk engine
would ignore it (it never takes a limit it cannot parse). Expected failures print one
line and exit 2, never a traceback.
"""
from __future__ import annotations

import asyncio
import getpass
import time
from pathlib import Path

import click
from rich.console import Console

from firetape.kafka import options as kafka_options

# soft_wrap: a message is one line, whatever the terminal width (greppable, testable).
errors = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}")
    raise SystemExit(2)


_TARGET = [
    click.option("--run-dir", type=click.Path(file_okay=False),
                 help="A live session's run directory; without it the command goes to Kafka."),
    click.option("--operator", default=None, help="Who sends it (default: your login)."),
    kafka_options.prefix,
    kafka_options.bootstrap,
]


def _target(func):
    for option in reversed(_TARGET):
        func = option(func)
    return func


def _account_option(default: str):
    return click.option("--account", default=default, show_default=True,
                        help="The account it is for (\"\": every account).")


def command_event(kind: type, run_id: str, now_ns: int, **fields):
    """A control event of type `kind` given at `now_ns`: its id comes from what it says
    and when it was given, so the same command sent twice is two commands."""
    from agents.context import Context

    ctx = Context(run_id, "operator", fields.get("account", ""))
    said = sorted(f"{name}={value}" for name, value in fields.items())
    event_id = ctx.derive_id("operator", kind.__name__, now_ns, *said)
    return kind(event_id=event_id, ts_event=now_ns, ts_init=now_ns, correlation_id=event_id,
                causation_id="", producer="operator", run_id=run_id, **fields)


def _said(kind: type, fields: dict) -> str:
    """The command in a few words, for the confirmation line."""
    if "strategy" in fields:
        return f"{kind.__name__}({fields['strategy']})"
    if "name" in fields:
        return f"{kind.__name__}({fields['name']}={fields['value']})"
    return kind.__name__


def _send(kind: type, run_dir, operator, prefix, bootstrap, **fields) -> None:
    """Build the command and deliver it to the session at `run_dir`, or to Kafka."""
    operator = operator or getpass.getuser()
    now = time.time_ns()
    if run_dir is not None:
        _to_session(Path(run_dir), kind, operator, now, fields)
    else:
        _to_kafka(kind, operator, now, prefix, bootstrap, fields)


def _to_session(run_dir: Path, kind: type, operator: str, now: int, fields: dict) -> None:
    from connectors.alpaca.inbox import post_command
    from firetape.runtime.live_inputs import LIVE_MODE
    from firetape.runtime.session import read_meta

    try:
        meta = read_meta(run_dir)
        run_id = meta["run_id"]
    except (OSError, KeyError, ValueError) as exc:
        _fail(f"{run_dir}: not a run directory ({exc})")
    if meta.get("mode") != LIVE_MODE:
        _fail(f"{run_dir}: a {meta.get('mode', 'non-live')} run; only live sessions read "
              f"commands (a backtest or a paper session from a file has no inbox)")
    if meta.get("completed"):
        _fail(f"{run_dir}: that session has finished; a command to it would never be read")
    event = command_event(kind, run_id, now, operator=operator, **fields)
    path = post_command(run_dir, event)
    out.print(f"{_said(kind, fields)} by {operator} posted to {path}; the session takes it "
              f"in when it next reads its inbox")


def _to_kafka(kind: type, operator: str, now: int, prefix, bootstrap, fields: dict) -> None:
    from firetape.kafka.admin import TopicAdminError
    from firetape.kafka.commands import send_command
    from firetape.kafka.settings import SettingsError, from_env

    try:
        settings = from_env().with_overrides(prefix=prefix, bootstrap=bootstrap)
    except SettingsError as error:
        _fail(str(error))
    event = command_event(kind, settings.run_id or "operator", now, operator=operator,
                          **fields)
    try:
        offset = asyncio.run(asyncio.wait_for(send_command(settings, event), 60))
    except TopicAdminError as error:          # names the cluster itself
        _fail(str(error))
    except (TimeoutError, OSError) as error:
        _fail(f"Kafka at {settings.bootstrap} did not take the command: {error}")
    out.print(f"{_said(kind, fields)} by {operator} sent to {settings.prefix}control@{offset} "
              f"on {settings.bootstrap}")


@click.group()
def control() -> None:
    """Operator commands, to a live session (--run-dir) or to the Kafka agents."""


@control.command("kill-switch")
@click.argument("action", type=click.Choice(["engage", "release"]))
@click.option("--reason", required=True, help="Why: recorded with the command.")
@_account_option("")
@_target
def kill_switch(action, reason, account, run_dir, operator, prefix, bootstrap):
    """Engage the kill switch (no order is approved after it, only the command releases
    it: no restart does) or release it."""
    from schemas import KillSwitchEngaged, KillSwitchReleased

    kind = KillSwitchEngaged if action == "engage" else KillSwitchReleased
    _send(kind, run_dir, operator, prefix, bootstrap, account=account, reason=reason)


@control.command("release-halt")
@click.option("--reason", required=True, help="Why: recorded with the command.")
@_account_option("")
@_target
def release_halt(reason, account, run_dir, operator, prefix, bootstrap):
    """Lift a drawdown halt (after its cooldown) or a daily-loss halt."""
    from schemas import HaltReleased

    _send(HaltReleased, run_dir, operator, prefix, bootstrap, account=account, reason=reason)


@control.command("set-limit")
@click.argument("name")
@click.argument("value")
@_account_option("")
@_target
def set_limit(name, value, account, run_dir, operator, prefix, bootstrap):
    """Set risk limit NAME (as in [risk] of the config) to VALUE from now on."""
    from risk.limits import RiskLimits, with_limit
    from schemas import LimitChanged

    try:
        with_limit(RiskLimits(), name, value)
    except ValueError as exc:
        _fail(str(exc))
    _send(LimitChanged, run_dir, operator, prefix, bootstrap, account=account, name=name,
          value=value)


@control.command("disable-strategy")
@click.argument("strategy")
@_account_option("")
@_target
def disable_strategy(strategy, account, run_dir, operator, prefix, bootstrap):
    """Stop calling STRATEGY (it keeps its state) until enable-strategy. On Kafka each
    md.bars partition takes it before its next bar (see strategy-points)."""
    from schemas import StrategyDisabled

    _send(StrategyDisabled, run_dir, operator, prefix, bootstrap, account=account,
          strategy=strategy)


@control.command("enable-strategy")
@click.argument("strategy")
@_account_option("")
@_target
def enable_strategy(strategy, account, run_dir, operator, prefix, bootstrap):
    """Call STRATEGY again, from the next bar."""
    from schemas import StrategyEnabled

    _send(StrategyEnabled, run_dir, operator, prefix, bootstrap, account=account,
          strategy=strategy)


@control.command("ack-reconciliation")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="The live session's run directory.")
@_account_option("paper")
@click.option("--operator", default=None, help="Who acknowledges (default: your login).")
def ack_reconciliation(run_dir, account, operator):
    """Accept the differences a live session's start found and lift its reconciliation
    halt (and only that one: an engaged kill switch stays)."""
    from connectors.alpaca.inbox import post_command
    from connectors.alpaca.reconcile import acknowledgement
    from firetape.runtime.session import read_meta

    operator = operator or getpass.getuser()
    try:
        run_id = read_meta(Path(run_dir))["run_id"]
        path = post_command(Path(run_dir), acknowledgement(run_id, account, operator,
                                                           time.time_ns()))
    except (OSError, KeyError, ValueError) as exc:
        _fail(f"{run_dir}: not a run directory ({exc})")
    out.print(f"acknowledged by {operator}: posted to {path}; the session lifts the halt "
              f"when it reads it")


@control.command("strategy-points")
@kafka_options.prefix
@kafka_options.bootstrap
def strategy_points(prefix, bootstrap):
    """Kafka: where each strategy command took effect (md.bars partition, the offset of the
    first bar evaluated with it, the command's control offset), from strategy.control."""
    from firetape.kafka.commands import strategy_points as points
    from firetape.kafka.settings import SettingsError, from_env

    try:
        settings = from_env().with_overrides(prefix=prefix, bootstrap=bootstrap)
        lines = asyncio.run(asyncio.wait_for(points(settings), 60))
    except SettingsError as error:
        _fail(str(error))
    except (TimeoutError, OSError) as error:
        _fail(f"Kafka at {settings.bootstrap}: {error}")
    for line in lines:
        out.print(line)
