"""Start-up reconciliation and its acknowledgement."""
from __future__ import annotations

from decimal import Decimal

import msgspec
from click.testing import CliRunner

from agents.context import Context
from connectors.alpaca import wire
from firetape.control_cli import control
from schemas.broker import (
    BrokerStateAdopted, ReconciliationCompleted, ReconciliationDifference, WorkingOrder,
)
from schemas.carryover import CarriedLot
from connectors.alpaca.inbox import INBOX, post_command, read_commands
from connectors.alpaca.reconcile import (
    ACK_REASON, LocalState, acknowledgement, local_state_of_carried, reconcile,
)
from firetape.runtime.session import write_meta
from risk.engine import RiskStage
from risk.limits import RiskLimits
from schemas import (
    KillSwitchEngaged, KillSwitchReleased, OrderFilled, PositionChanged,
    ReconciliationAcknowledged, SubmitOrder,
)
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
    completed = events[-1]
    assert isinstance(completed, ReconciliationCompleted)
    assert completed.resolution == "halted" and completed.differences == 5
    assert len({e.event_id for e in events}) == len(events)


def test_reconcile_when_config_adopts_then_differences_recorded_and_broker_state_adopted():
    positions, orders = broker_state()
    events = reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "adopt", NOW,
                       cash=Decimal("95000.50"))
    completed, adopted = events[-2:]
    assert completed.resolution == "adopted" and completed.differences == 4
    assert isinstance(adopted, BrokerStateAdopted) and adopted.cash == Decimal("95000.50")
    assert [(p.symbol, p.quantity, p.avg_entry_price, p.mark, p.strategy)
            for p in adopted.positions] == [
        ("AAPL", Decimal(10), Decimal("214.35"), Decimal(215), ""),
        ("TSLA", Decimal(-3), Decimal("240.10"), Decimal(242), "")]


def test_reconcile_when_adopting_and_sleeves_add_up_then_positions_keep_their_strategies():
    positions, orders = broker_state()
    local = LocalState({"AAPL": Decimal(10), "TSLA": Decimal(-2)}, {},
                       {("sma", "AAPL"): Decimal(6), ("momentum", "AAPL"): Decimal(4),
                        ("sma", "TSLA"): Decimal(-2)})
    events = reconcile(positions, orders, local, CTX, "paper", "adopt", NOW, cash=Decimal(1))
    adopted = events[-1]
    # AAPL's sleeves add up to Alpaca's 10; TSLA's (-2) do not match -3: unattributed.
    assert [(p.symbol, p.strategy, p.quantity) for p in adopted.positions] == [
        ("AAPL", "momentum", Decimal(4)), ("AAPL", "sma", Decimal(6)),
        ("TSLA", "", Decimal(-3))]


def test_reconcile_when_adopting_without_the_broker_cash_then_halts_instead():
    positions, orders = broker_state()
    events = reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "adopt", NOW)
    assert not any(isinstance(e, BrokerStateAdopted) for e in events)
    assert events[-1].resolution == "halted"


def test_adopted_state_when_run_through_the_pipeline_then_portfolio_risk_and_sizing_start_there(
        tmp_path):
    from connectors.alpaca.execution import AlpacaExecution
    from firetape.config import load_config
    from firetape.eventlog import EventLog
    from firetape.runtime.bus import EmbeddedBus
    from firetape.runtime.pipeline import build_stages
    from schemas import PortfolioValued
    from topics.codec import codec

    positions, orders = broker_state()
    config = load_config(None, environ={})
    adopted = reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "adopt", NOW,
                        cash=Decimal("95000.50"))[-1]
    execution = AlpacaExecution(Context("live", "execution", "paper"), config.alpaca)
    with EventLog(tmp_path / "log", mode="a") as log:
        bus = EmbeddedBus(build_stages(config, "live", execution), log, "live")
        bus.publish(adopted)
        log.flush()
        events = {topic: [codec(topic).decode(r.value) for r in log.read(topic)]
                  for topic in ("fills", "portfolio")}
    _, portfolio, risk, _, allocator = bus.stages
    assert [(f.symbol, f.side, f.quantity, f.price, f.commission, f.strategy)
            for f in events["fills"]] == [
        ("AAPL", "BUY", Decimal(10), Decimal("214.35"), Decimal(0), ""),
        ("TSLA", "SELL", Decimal(3), Decimal("240.10"), Decimal(0), "")]
    valued = events["portfolio"][-1]
    assert isinstance(valued, PortfolioValued)
    # Cash is Alpaca's; equity = cash + positions at Alpaca's prices (10 x 215 - 3 x 242).
    assert valued.cash == Decimal("95000.50")
    assert valued.equity == Decimal("95000.50") + 10 * 215 - 3 * 242
    assert valued.unrealized_pnl == Decimal("6.5") + Decimal("-5.7")   # as Alpaca reports
    assert valued.drawdown == 0 and valued.high_water_mark == valued.equity
    assert portfolio.positions == {"AAPL": Decimal(10), "TSLA": Decimal(-3)}
    assert (risk.position("AAPL"), risk.position("TSLA")) == (Decimal(10), Decimal(-3))
    assert risk.trading_state == ACTIVE
    assert allocator.position[("", "AAPL")] == Decimal(10)
    assert allocator.equity == valued.equity
    # A bar marks AAPL at its close from then on.
    bus = EmbeddedBus(bus.stages, None, "live")
    bus.publish(f.bar("AAPL", ts=NOW + 60 * 10**9, close=216.0))
    assert portfolio.mark_of("AAPL") == Decimal("216.0")


def test_local_state_of_carried_when_lots_and_orders_then_positions_sleeves_and_open_orders():
    lots = [CarriedLot(strategy="sma", symbol="AAPL", quantity=Decimal(6), price=Decimal(1)),
            CarriedLot(strategy="sma", symbol="AAPL", quantity=Decimal(4), price=Decimal(2)),
            CarriedLot(strategy="mom", symbol="TSLA", quantity=Decimal(-3), price=Decimal(3))]
    orders = [WorkingOrder(client_order_id="ft-1", symbol="MSFT", side="BUY",
                           quantity=Decimal(5), strategy="sma")]
    state = local_state_of_carried(lots, orders)
    assert state.positions == {"AAPL": Decimal(10), "TSLA": Decimal(-3)}
    assert state.sleeves == {("mom", "TSLA"): Decimal(-3), ("sma", "AAPL"): Decimal(10)}
    assert state.open_orders == {"ft-1": "MSFT"}
    assert state.working["ft-1"].strategy == "sma"


def test_reconcile_when_adopting_then_open_orders_taken_over_known_ones_keep_their_strategy():
    positions, orders = broker_state()
    known = WorkingOrder(client_order_id="ft-0f4c2a9d", symbol="AAPL", side="BUY",
                         quantity=Decimal(10), strategy="sma", correlation_id="chain-1",
                         placed_event_id="place-1")
    local = local_state_of_carried([], [known])
    adopted = reconcile(positions, orders, local, CTX, "paper", "adopt", NOW,
                        cash=Decimal(1))[-1]
    assert [(o.client_order_id, o.strategy, o.symbol, o.side, o.remaining,
             o.correlation_id, o.broker_order_id) for o in adopted.orders] == [
        ("ft-0f4c2a9d", "sma", "AAPL", "BUY", Decimal(10), "chain-1",
         "61e69015-8549-4bfd-b9c3-01e75843f47d"),
        ("web-manual-1", "", "MSFT", "SELL", Decimal(5), "web-manual-1",
         "9b2e9d1c-0000-4a6e-8d1e-2f5c0f1d7a11")]


def halted_risk() -> RiskStage:
    positions, orders = broker_state()
    risk = RiskStage(Context("live", "risk", "paper"), RiskLimits(), Decimal(100_000))
    completed = reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "halt", NOW)[-1]
    (changed,) = risk.routes()[ReconciliationCompleted](completed)
    assert changed.state == HALTED and "reconciliation: 4 difference(s)" in changed.reason
    return risk


def test_risk_when_reconciliation_halts_then_halted_until_acknowledged():
    risk = halted_risk()
    assert risk.trading_state == HALTED
    ack = acknowledgement("live", "paper", "alice", NOW + 1)
    (changed,) = risk.routes()[ReconciliationAcknowledged](ack)
    assert risk.trading_state == ACTIVE and "acknowledged by alice" in changed.reason


def test_risk_when_reconciliation_clean_or_adopted_then_no_halt():
    risk = RiskStage(Context("live", "risk", "paper"), RiskLimits(), Decimal(100_000))
    positions, orders = broker_state()
    for events in (reconcile([], [], LocalState({}, {}), CTX, "paper", "halt", NOW),
                   reconcile(positions, orders, LocalState({}, {}), CTX, "paper", "adopt",
                             NOW, cash=Decimal(1))):
        completed = next(e for e in events if isinstance(e, ReconciliationCompleted))
        assert risk.routes()[ReconciliationCompleted](completed) == []
    assert risk.trading_state == ACTIVE


def test_ack_reconciliation_when_operator_kill_switch_engaged_then_kill_switch_stays():
    risk = halted_risk()
    manual = KillSwitchEngaged(**f.header(NOW + 1), account="paper", reason="fat finger",
                               operator="bob")
    risk.routes()[KillSwitchEngaged](manual)
    (changed,) = risk.routes()[ReconciliationAcknowledged](
        acknowledgement("live", "paper", "alice", NOW + 2))
    assert risk.trading_state == HALTED
    assert "still engaged: kill_switch: by bob: fat finger" in changed.reason
    # ...and releasing the kill switch does not lift an unacknowledged reconciliation.
    risk = halted_risk()
    risk.routes()[KillSwitchEngaged](manual)
    risk.routes()[KillSwitchReleased](KillSwitchReleased(
        **f.header(NOW + 3), account="paper", reason="ok", operator="bob"))
    assert risk.trading_state == HALTED
    denial = risk.routes()[SubmitOrder](f.submit_order("AAPL", ts=NOW + 4))
    assert "reconciliation" in denial[-1].reasons[0]


def test_ack_reconciliation_when_run_dir_exists_then_release_posted_to_the_inbox(tmp_path):
    write_meta(tmp_path, {"run_id": "abc123"})
    result = CliRunner().invoke(control, ["ack-reconciliation", "--run-dir", str(tmp_path),
                                          "--operator", "alice"])
    assert result.exit_code == 0 and "acknowledged by alice" in result.output
    (command,), offset = read_commands(tmp_path)
    assert isinstance(command, ReconciliationAcknowledged)
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
        inbox.write(b'{"type": "Reconciliation')
    commands, offset = read_commands(tmp_path)
    assert len(commands) == 1 and offset < (tmp_path / INBOX).stat().st_size
