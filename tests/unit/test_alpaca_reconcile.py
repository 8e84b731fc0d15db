"""Start-up reconciliation and its acknowledgement."""
from __future__ import annotations

from decimal import Decimal

import msgspec
from click.testing import CliRunner

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.cli import control
from schemas.broker import ReconciliationCompleted, ReconciliationDifference
from connectors.alpaca.inbox import INBOX, post_command, read_commands
from connectors.alpaca.reconcile import (
    ACK_REASON, LocalState, acknowledgement, local_state, local_state_of_runs, reconcile,
)
from firetape.runtime.session import write_meta
from risk.engine import RiskStage
from risk.limits import RiskLimits
from schemas import KillSwitchEngaged, KillSwitchReleased, OrderFilled, PositionChanged
from schemas.risk import ACTIVE, HALTED
from tests import factories as f
from tests.fixtures.alpaca.recorded import load

NOW = f.T0
CTX = Context("live", "reconciliation", "paper")


def broker_state():
    positions = msgspec.convert(load("positions"), list[wire.Position], strict=False)
    orders = msgspec.convert(load("orders_open"), list[wire.Order], strict=False)
    return positions, orders


def test_reconcile_when_states_agree_then_clean_and_no_halt():
    positions, orders = broker_state()
    local = LocalState({"AAPL": Decimal(10), "TSLA": Decimal(-3)},
                       {"ft-0f4c2a9d": "AAPL", "web-manual-1": "MSFT"})
    events = reconcile(positions, orders, local, CTX, "paper", "halt", NOW)
    assert [type(e) for e in events] == [ReconciliationCompleted]
    assert events[0].resolution == "clean" and events[0].differences == 0


def test_reconcile_when_states_differ_then_each_difference_and_a_halt():
    positions, orders = broker_state()
    local = LocalState({"AAPL": Decimal(7), "NVDA": Decimal(2)},
                       {"ft-0f4c2a9d": "AAPL", "ft-gone": "NVDA"})
    events = reconcile(positions, orders, local, CTX, "paper", "halt", NOW)
    differences = [e for e in events if isinstance(e, ReconciliationDifference)]
    assert [(d.kind, d.symbol, d.broker_value, d.local_value) for d in differences] == [
        ("position", "AAPL", "10", "7"), ("position", "NVDA", "0", "2"),
        ("position", "TSLA", "-3", "0"), ("unknown_order", "MSFT", "new", "none"),
        ("missing_order", "NVDA", "not open", "open")]
    assert differences[3].broker_order_id == "9b2e9d1c-0000-4a6e-8d1e-2f5c0f1d7a11"
    completed, halt = events[-2:]
    assert completed.resolution == "halted" and completed.differences == 5
    assert isinstance(halt, KillSwitchEngaged) and "ack-reconciliation" in halt.reason
    assert len({e.event_id for e in events}) == len(events)


def test_reconcile_when_config_adopts_then_differences_recorded_but_no_halt():
    positions, orders = broker_state()
    events = reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "adopt", NOW)
    assert not any(isinstance(e, KillSwitchEngaged) for e in events)
    assert events[-1].resolution == "adopted" and events[-1].differences == 4


def test_local_state_when_folded_from_events_then_open_orders_and_net_positions():
    placed = f.place_order("AAPL", "BUY", "10")
    done = f.place_order("MSFT", "BUY", "5")
    filled = f.fill("MSFT", quantity="5", client_order_id=done.client_order_id)
    position = PositionChanged(**f.header(), account="paper", strategy="s", symbol="MSFT",
                               quantity=Decimal(5), avg_price=Decimal(1),
                               realized_pnl=Decimal(0), fill_id=filled.fill_id,
                               account_quantity=Decimal(5))
    done_event = OrderFilled(**f.header(), client_order_id=done.client_order_id, account="paper",
                             symbol="MSFT", filled_quantity=Decimal(5), avg_price=Decimal(1))
    state = local_state([placed, done, filled, position, done_event])
    assert state.open_orders == {placed.client_order_id: "AAPL"}
    assert state.positions == {"MSFT": Decimal(5)}


def position(symbol: str, account_quantity: str) -> PositionChanged:
    return PositionChanged(**f.header(), account="paper", strategy="s", symbol=symbol,
                           quantity=Decimal(account_quantity), avg_price=Decimal(1),
                           realized_pnl=Decimal(0), fill_id="f",
                           account_quantity=Decimal(account_quantity))


def test_local_state_of_runs_when_each_run_starts_flat_then_positions_add_up_across_runs():
    sent_first = f.place_order("AAPL", "BUY", "10")
    filled_later = OrderFilled(**f.header(), client_order_id=sent_first.client_order_id,
                               account="paper", symbol="AAPL", filled_quantity=Decimal(10),
                               avg_price=Decimal(1))
    still_open = f.place_order("MSFT", "BUY", "5")
    first = [sent_first, position("TSLA", "-3")]
    second = [still_open, filled_later, position("AAPL", "10"), position("TSLA", "1")]
    state = local_state_of_runs([first, second])
    assert state.positions == {"AAPL": Decimal(10), "TSLA": Decimal(-2)}
    assert state.open_orders == {still_open.client_order_id: "MSFT"}


def test_risk_when_reconciliation_halts_then_halted_until_acknowledged():
    positions, orders = broker_state()
    risk = RiskStage(Context("live", "risk", "paper"), RiskLimits(), Decimal(100_000))
    for event in reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "halt", NOW):
        if isinstance(event, KillSwitchEngaged):
            risk.routes()[KillSwitchEngaged](event)
    assert risk.trading_state == HALTED
    ack = acknowledgement("live", "paper", "alice", NOW + 1)
    risk.routes()[KillSwitchReleased](ack)
    assert risk.trading_state == ACTIVE


def test_ack_reconciliation_when_run_dir_exists_then_release_posted_to_the_inbox(tmp_path):
    write_meta(tmp_path, {"run_id": "abc123"})
    result = CliRunner().invoke(control, ["ack-reconciliation", "--run-dir", str(tmp_path),
                                          "--operator", "alice"])
    assert result.exit_code == 0 and "acknowledged by alice" in result.output
    (command,), offset = read_commands(tmp_path)
    assert isinstance(command, KillSwitchReleased)
    assert (command.reason, command.operator, command.run_id) == (ACK_REASON, "alice", "abc123")
    assert offset == (tmp_path / INBOX).stat().st_size
    assert read_commands(tmp_path, offset) == ([], offset)   # read once, not again


def test_ack_reconciliation_when_not_a_run_dir_then_clear_error(tmp_path):
    result = CliRunner().invoke(control, ["ack-reconciliation", "--run-dir",
                                          str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_read_commands_when_last_line_incomplete_then_left_for_later(tmp_path):
    post_command(tmp_path, acknowledgement("r", "paper", "bob", NOW))
    with (tmp_path / INBOX).open("ab") as inbox:
        inbox.write(b'{"type": "KillSwitch')
    commands, offset = read_commands(tmp_path)
    assert len(commands) == 1 and offset < (tmp_path / INBOX).stat().st_size
