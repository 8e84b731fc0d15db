"""The live loop end to end with no network: bars and trade updates from local websocket
peers speaking Alpaca's protocols, account/positions/orders from recorded HTTP
(`responses`). A live run is replayed byte for byte from its recorded broker reports, and
a restart that derives the same order again finds it by client order id instead of
placing it twice."""
from __future__ import annotations

import asyncio
import json
import queue
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from responses import matchers

from connectors.alpaca.client import AlpacaTrading
from connectors.alpaca.history import AlpacaHistory
from connectors.alpaca.parse import rfc3339_ns
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from firetape.config import load_config
from firetape.eventlog import EventLog
from firetape.runtime.live import LiveSession
from firetape.runtime.live_carryover import final_state
from firetape.runtime.live_setup import LiveConnections, LiveRequest
from firetape.runtime.replay import replay_run
from topics.codec import codec
from tests.fixtures.alpaca.recorded import DATA, PAPER, credentials, load
from tests.fixtures.alpaca.stream_peer import DROP, StreamPeer, bar_message, trade_update

FAST = Backoff(0.01, 0.05)
CONFIG = """
[strategies.sma_cross]
fast = 2
slow = 3
[risk]
var_min_history = 2
"""
FINAL = ("filled", "canceled", "expired", "rejected")
# AAPL falls then rises: the fast SMA crosses above the slow one on the 14:35 bar.
CLOSES = [10.0, 9.0, 8.0, 9.0, 11.0, 12.0]


def bar_script() -> list:
    script = [bar_message("AAPL", f"2024-07-01T14:{30 + i:02d}:00Z", close)
              for i, close in enumerate(CLOSES)]
    script.insert(3, script[2])     # a bar delivered twice is taken once
    return script


def later_bars() -> list:
    """A restarted run's bars: the first run's again (a run that continues it takes none
    of them: its state holds them already), then two more as AAPL goes on up."""
    return bar_script() + [bar_message("AAPL", f"2024-07-01T14:{36 + i:02d}:00Z", close)
                           for i, close in enumerate([13.0, 14.0])]


def took_later_bars(bus) -> bool:
    return bus.counts().get("md.bars", 0) >= 2


class FakeAlpaca:
    """Alpaca's trading REST endpoints as `responses` callbacks, with the orders it holds."""

    def __init__(self, positions: list) -> None:
        self.orders: dict[str, dict] = {}
        self.positions = positions
        self.posts = 0
        self.placed: queue.Queue[dict] = queue.Queue()

    def install(self) -> None:
        responses.get(f"{PAPER}/account", json=load("account_paper"))
        responses.add_callback(responses.GET, f"{PAPER}/positions",
                               callback=lambda r: (200, {}, json.dumps(self.positions)))
        responses.add_callback(responses.GET, f"{PAPER}/orders", callback=self._open_orders,
                               match=[matchers.query_param_matcher({"status": "open"},
                                                                   strict_match=False)])
        responses.add_callback(responses.GET, f"{PAPER}/orders", callback=self._orders_after,
                               match=[matchers.query_param_matcher({"status": "all"},
                                                                   strict_match=False)])
        responses.add_callback(responses.GET, f"{PAPER}/orders:by_client_order_id",
                               callback=self._lookup)
        responses.add_callback(responses.POST, f"{PAPER}/orders", callback=self._post)

    def _open_orders(self, request):
        working = [o for o in self.orders.values() if o["status"] not in FINAL]
        return 200, {}, json.dumps(working)

    def _orders_after(self, request):
        # Alpaca's `after` filters on submission time.
        after = rfc3339_ns(request.params["after"])
        since = [o for o in self.orders.values() if rfc3339_ns(o["submitted_at"]) > after]
        return 200, {}, json.dumps(since)

    def _lookup(self, request):
        client_id = request.params["client_order_id"]
        if client_id in self.orders:
            return 200, {}, json.dumps(self.orders[client_id])
        return 404, {}, json.dumps({"code": 40410000, "message": "order not found"})

    def _post(self, request):
        body = json.loads(request.body)
        self.posts += 1
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        order = {**load("order_new"), "id": f"alp-{self.posts}",
                 "client_order_id": body["client_order_id"], "symbol": body["symbol"],
                 "qty": body["qty"], "side": body["side"], "status": "accepted",
                 "created_at": now, "submitted_at": now, "updated_at": now}
        self.orders[body["client_order_id"]] = order
        self.placed.put(order)
        return 200, {}, json.dumps(order)

    def fill(self, order: dict) -> dict:
        filled = {**order, "status": "filled", "filled_qty": order["qty"],
                  "filled_avg_price": "11.02", "filled_at": "2024-07-01T14:36:00.250Z"}
        self.orders[order["client_order_id"]] = filled
        return filled


ADOPT = '[alpaca]\nreconciliation = "adopt"\n'


def live_config(tmp_path: Path, extra: str = ""):
    path = tmp_path / "firetape.toml"
    path.write_text(CONFIG + extra)
    return load_config(path, environ={})


def run_live(tmp_path: Path, alpaca: FakeAlpaca, trading_script: list, until,
             bars: list | None = None, config_extra: str = "", **request) -> object:
    config = live_config(tmp_path, config_extra)

    async def scenario():
        async with StreamPeer("data", [bars or bar_script()]) as data, \
                StreamPeer("trading", [trading_script]) as trading:
            links = LiveConnections(
                AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None)),
                data.url, trading.url, FAST)
            session = LiveSession(config, LiveRequest("alpaca-paper", False, ("AAPL",),
                                                      **request),
                                  credentials(), links, tmp_path / "runs", until=until,
                                  balance_refresh_seconds=0.3)
            return await asyncio.wait_for(session.run(), 30)

    return asyncio.run(scenario())


def topic_events(run_dir: Path, topic: str) -> list:
    decode = codec(topic).decode
    with EventLog(run_dir / "log", mode="r") as log:
        return [decode(r.value) for r in log.read(topic)]


def filled(bus) -> bool:
    return bus.counts().get("fills", 0) >= 1


@responses.activate
def test_live_run_when_bars_cross_then_order_sent_filled_and_replayed_byte_for_byte(tmp_path):
    alpaca = FakeAlpaca(positions=[])
    alpaca.install()

    async def new_update():
        order = await asyncio.to_thread(alpaca.placed.get, timeout=20)
        return trade_update("new", order, "2024-07-01T14:35:00.130Z")

    async def fill_update():
        order = alpaca.fill(next(iter(alpaca.orders.values())))
        return trade_update("fill", order, "2024-07-01T14:36:00.250Z",
                            execution_id="exec-1", price="11.02", qty=order["qty"],
                            position_qty=order["qty"])

    result = run_live(tmp_path, alpaca, [new_update, fill_update], filled)

    assert alpaca.posts == 1 and result.submissions == 1
    assert result.bars == len(CLOSES) or result.bars == len(CLOSES) - 1  # stops at the fill
    fills = topic_events(result.run_dir, "fills")
    assert [(f.symbol, f.side, f.quantity, f.price, f.strategy) for f in fills] == [
        ("AAPL", "BUY", Decimal(100), Decimal("11.02"), "sma_cross")]
    updates = topic_events(result.run_dir, "order.updates")
    kinds = [type(e).__name__ for e in updates]
    assert kinds.count("OrderAccepted") == 1 and "OrderFilled" in kinds
    times = [e for e in updates if type(e).__name__ == "BrokerOrderTimes"]
    assert {t.account_type for t in times} == {"paper"}
    # the detected account type on every order event: requests, approved orders, updates
    order_events = [e for topic in ("order.requests", "orders", "order.updates")
                    for e in topic_events(result.run_dir, topic)
                    if type(e).__name__ != "BrokerOrderTimes"]
    assert order_events and {e.account_type for e in order_events} == {"paper"}
    fill_times = next(t for t in times if t.update == "fill")
    assert fill_times.filled_at_ns == 1719844560250000000
    assert fill_times.received_ns >= fill_times.ts_init > 0
    reports = [type(e).__name__ for e in topic_events(result.run_dir, "broker.reports")]
    assert reports[:2] == ["BrokerAccountDetected", "ReconciliationCompleted"]
    assert "BrokerOrderSubmitted" in reports and reports.count("BrokerTradeUpdate") == 2
    positions = topic_events(result.run_dir, "portfolio")
    assert any(getattr(p, "account_quantity", None) == Decimal(100) for p in positions)

    replayed = replay_run(result.run_dir)
    assert [t.topic for t in replayed.topics if not t.match] == []
    assert {"broker.reports", "fills", "order.updates"} <= {t.topic for t in replayed.topics}

    # A restart with nothing changed at Alpaca (it holds the filled order's position):
    # the run carries over the first one's final state, so reconciliation is clean, the
    # sleeve holds its 100 shares, and the market going on up buys nothing more.
    alpaca.positions = [{**load("positions")[0], "qty": "100", "qty_available": "100",
                         "avg_entry_price": "11.02"}]
    again = run_live(tmp_path, alpaca, [], took_later_bars, bars=later_bars())
    # No bar the first run took is taken again (it may have stopped before the last one).
    first_bars = [b.ts_event for b in topic_events(result.run_dir, "md.bars")]
    taken = [b.ts_event for b in topic_events(again.run_dir, "md.bars")]
    assert min(taken) > max(first_bars)
    assert taken[-2:] == [1719844620000000000, 1719844680000000000]   # closed 14:37, 14:38
    assert alpaca.posts == 1 and again.submissions == 0
    assert again.run_id == result.run_id and again.run_dir != result.run_dir
    assert again.meta["live"]["previous_run"] == str(result.run_dir)
    reports = topic_events(again.run_dir, "broker.reports")
    assert [type(e).__name__ for e in reports[:3]] == [
        "BrokerAccountDetected", "StateCarriedOver", "ReconciliationCompleted"]
    carried, completed = reports[1], reports[2]
    assert carried.from_run == result.run_dir.name and carried.orders == ()
    # risk's returns, the trading day and the strategies' state carry over too
    assert [h.symbol for h in carried.histories] == ["AAPL"] and carried.strategy_state
    assert carried.day is not None and carried.day.date == "2024-07-01"
    assert [(lot.strategy, lot.symbol, lot.quantity, lot.price) for lot in carried.lots] == [
        ("sma_cross", "AAPL", Decimal(100), Decimal("11.02"))]
    first_cash = [e for e in topic_events(result.run_dir, "portfolio")
                  if type(e).__name__ == "PortfolioValued"][-1].cash
    assert carried.cash == first_cash
    assert (completed.resolution, completed.differences) == ("clean", 0)
    assert [type(e).__name__ for e in topic_events(again.run_dir, "risk.decisions")] == []
    assert [(f.symbol, f.quantity, f.strategy) for f in topic_events(again.run_dir, "fills")
            ] == [("AAPL", Decimal(100), "sma_cross")]
    assert topic_events(again.run_dir, "order.requests") == []
    assert replay_run(again.run_dir).identical
    # The second run recorded what it carried over: its own final state is the same.
    state = final_state(again.run_dir)
    assert (state.lots, state.cash, state.orders) == (carried.lots, carried.cash, ())
    assert state.directions == carried.directions != ()

    # A fresh start (--fresh) carries nothing over; with the position closed at Alpaca
    # meanwhile it is clean, derives the same order from the same bars, and finds it by
    # client order id instead of placing it twice.
    alpaca.positions = []
    fresh = run_live(tmp_path, alpaca, [],
                     lambda bus: bus.counts().get("order.updates", 0) >= 2, fresh=True)
    assert alpaca.posts == 1
    assert fresh.meta["live"]["previous_run"] is None and fresh.meta["live"]["fresh"]
    submitted = [e for e in topic_events(fresh.run_dir, "broker.reports")
                 if type(e).__name__ == "BrokerOrderSubmitted"]
    assert [(s.existing, s.status) for s in submitted] == [(True, "filled")]
    assert replay_run(fresh.run_dir).identical


@responses.activate
def test_restart_when_an_order_of_the_earlier_run_is_still_working_then_its_fill_keeps_its_strategy(
        tmp_path):
    alpaca = FakeAlpaca(positions=[])
    alpaca.install()

    async def new_update():
        order = await asyncio.to_thread(alpaca.placed.get, timeout=20)
        return trade_update("new", order, "2024-07-01T14:35:00.130Z")

    def accepted(bus) -> bool:
        return bus.counts().get("order.updates", 0) >= 2   # OrderSubmitted, OrderAccepted

    first = run_live(tmp_path, alpaca, [new_update], accepted)
    assert alpaca.posts == 1 and topic_events(first.run_dir, "fills") == []
    (placed,) = topic_events(first.run_dir, "orders")

    async def fill_update():
        order = alpaca.fill(next(iter(alpaca.orders.values())))
        return trade_update("fill", order, "2024-07-01T14:36:00.250Z",
                            execution_id="exec-1", price="11.02", qty=order["qty"],
                            position_qty=order["qty"])

    # Stopped with the order working at Alpaca (open, nothing filled): the next run
    # carries it over, so reconciliation finds nothing to report, and its fill, which
    # comes in the second run, is booked to the strategy and chain that sent it.
    second = run_live(tmp_path, alpaca, [fill_update],
                      lambda bus: bus.counts().get("fills", 0) >= 1)
    assert alpaca.posts == 1
    reports = topic_events(second.run_dir, "broker.reports")
    carried = next(e for e in reports if type(e).__name__ == "StateCarriedOver")
    assert [(o.client_order_id, o.strategy, o.remaining, o.accepted) for o in carried.orders
            ] == [(placed.client_order_id, "sma_cross", Decimal(100), True)]
    completed = next(e for e in reports if type(e).__name__ == "ReconciliationCompleted")
    assert (completed.resolution, completed.differences) == ("clean", 0)
    (fill,) = topic_events(second.run_dir, "fills")
    assert (fill.client_order_id, fill.strategy, fill.quantity) == (
        placed.client_order_id, "sma_cross", Decimal(100))
    assert (fill.correlation_id, fill.causation_id) == (placed.correlation_id, placed.event_id)
    assert topic_events(second.run_dir, "order.requests") == []   # in flight: not again
    assert replay_run(second.run_dir).identical


@responses.activate
def test_restart_when_an_order_filled_while_stopped_then_caught_up_booked_and_clean(tmp_path):
    alpaca = FakeAlpaca(positions=[])
    alpaca.install()
    first = run_live(tmp_path, alpaca, [],
                     lambda bus: bus.counts().get("order.updates", 0) >= 2)
    (placed,) = topic_events(first.run_dir, "orders")
    assert topic_events(first.run_dir, "fills") == []

    # While no run listens, Alpaca fills the order: the next start reads the orders
    # endpoint, books the fill to the strategy that sent the order, and then finds
    # Alpaca and itself in agreement (no halt). The trade stream's own backfill covers
    # the order too and delivers nothing twice.
    order = alpaca.fill(next(iter(alpaca.orders.values())))
    alpaca.positions = [{**load("positions")[0], "qty": order["qty"],
                         "qty_available": order["qty"], "avg_entry_price": "11.02"}]
    second = run_live(tmp_path, alpaca, [], took_later_bars, bars=later_bars())
    reports = topic_events(second.run_dir, "broker.reports")
    kinds = [type(e).__name__ for e in reports]
    assert kinds[:3] == ["BrokerAccountDetected", "StateCarriedOver", "BrokerTradeUpdate"]
    assert reports[2].backfilled and kinds.count("BrokerTradeUpdate") == 1
    completed = next(e for e in reports if type(e).__name__ == "ReconciliationCompleted")
    assert (completed.resolution, completed.differences) == ("clean", 0)
    (fill,) = topic_events(second.run_dir, "fills")
    assert (fill.client_order_id, fill.strategy, fill.quantity, fill.price) == (
        placed.client_order_id, "sma_cross", Decimal(100), Decimal("11.02"))
    assert fill.correlation_id == placed.correlation_id
    assert topic_events(second.run_dir, "risk.decisions") == []
    assert replay_run(second.run_dir).identical


@responses.activate
def test_restart_when_kill_switch_was_engaged_then_the_next_run_starts_halted(tmp_path):
    from click.testing import CliRunner

    from firetape.control_cli import control

    alpaca = FakeAlpaca(positions=[])
    alpaca.install()

    async def kill():
        # the operator's command, as run in another terminal while the session runs
        run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
        said = await asyncio.to_thread(CliRunner().invoke, control, [
            "kill-switch", "engage", "--run-dir", str(run_dir), "--reason", "stop",
            "--operator", "ops"])
        assert said.exit_code == 0 and "KillSwitchEngaged by ops posted to" in said.output
        await asyncio.sleep(0.6)   # the loop polls its inbox every 0.2 s
        return [{"T": "success", "msg": "engaged"}]   # ignored by the client

    config = live_config(tmp_path)

    async def scenario(script, until):
        async with StreamPeer("data", [script]) as data, \
                StreamPeer("trading", [[]]) as trading:
            links = LiveConnections(
                AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None)),
                data.url, trading.url, FAST)
            session = LiveSession(config, LiveRequest("alpaca-paper", False, ("AAPL",)),
                                  credentials(), links, tmp_path / "runs", until=until)
            return await asyncio.wait_for(session.run(), 30)

    first = asyncio.run(scenario([kill], lambda bus: bus.counts().get("control", 0) >= 1))
    assert decisions(first.run_dir) == [("TradingStateChanged", "HALTED")]
    # Restarted, the operator's kill switch is still engaged: the crossing is denied.
    second = asyncio.run(scenario(bar_script(),
                                  lambda bus: bus.counts().get("order.requests", 0) >= 1))
    assert alpaca.posts == 0
    assert decisions(second.run_dir) == [("TradingStateChanged", "HALTED"),
                                         ("OrderDenied", "HALTED")]
    changed = topic_events(second.run_dir, "risk.decisions")[0]
    assert "kill_switch: carried over from" in changed.reason and "stop" in changed.reason
    assert replay_run(second.run_dir).identical


@responses.activate
def test_live_run_when_config_adopts_an_unknown_open_order_then_tracked_and_its_fill_booked(
        tmp_path):
    alpaca = FakeAlpaca(positions=[])
    alpaca.install()
    manual = {**load("order_new"), "id": "alp-manual", "client_order_id": "web-manual-1",
              "symbol": "AAPL", "qty": "7", "side": "buy", "status": "new"}
    alpaca.orders["web-manual-1"] = manual

    async def manual_fill():
        await asyncio.sleep(0.2)
        order = {**manual, "status": "filled", "filled_qty": "7", "filled_avg_price": "9.5",
                 "filled_at": "2024-07-01T14:33:00Z"}
        alpaca.orders["web-manual-1"] = order
        return trade_update("fill", order, "2024-07-01T14:33:00Z", execution_id="exec-m",
                            price="9.5", qty="7", position_qty="7")

    result = run_live(tmp_path, alpaca, [manual_fill], filled, bars=bar_script()[:3],
                      config_extra=ADOPT)
    assert result.dead_letters == 0
    reports = topic_events(result.run_dir, "broker.reports")
    difference = next(e for e in reports if type(e).__name__ == "ReconciliationDifference")
    assert (difference.kind, difference.client_order_id) == ("unknown_order", "web-manual-1")
    adopted = next(e for e in reports if type(e).__name__ == "BrokerStateAdopted")
    assert [(o.client_order_id, o.strategy, o.side, o.remaining, o.broker_order_id)
            for o in adopted.orders] == [("web-manual-1", "", "BUY", Decimal(7), "alp-manual")]
    (fill,) = topic_events(result.run_dir, "fills")
    assert (fill.client_order_id, fill.strategy, fill.quantity, fill.price) == (
        "web-manual-1", "", Decimal(7), Decimal("9.5"))
    updates = [type(e).__name__ for e in topic_events(result.run_dir, "order.updates")]
    assert "OrderFilled" in updates and "OrderAccepted" not in updates   # taken over live
    assert replay_run(result.run_dir).identical


@responses.activate
def test_live_run_when_bar_stream_drops_then_missed_bars_backfilled_and_replayed(tmp_path):
    alpaca = FakeAlpaca(positions=[])
    alpaca.install()
    bars = [bar_message("AAPL", f"2024-07-01T14:{30 + i:02d}:00Z", close)
            for i, close in enumerate(CLOSES)]
    # The stream drops after 14:32; 14:33 and 14:34 come from the historical endpoint
    # (with a copy of 14:32, already taken), 14:35 from the stream again.
    history_bars = [{key: message[0][key] for key in ("t", "o", "h", "l", "c", "v", "n", "vw")}
                    for message in bars[2:5]]
    responses.get(f"{DATA}/stocks/bars",
                  json={"bars": {"AAPL": history_bars}, "next_page_token": None})
    config = live_config(tmp_path)

    async def scenario():
        async with StreamPeer("data", [[*bars[:3], DROP], bars[5:]]) as data, \
                StreamPeer("trading", [[]]) as trading:
            links = LiveConnections(
                AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None)),
                data.url, trading.url, FAST,
                history=AlpacaHistory(credentials(), bucket=TokenBucket(sleep=lambda s: None)))
            session = LiveSession(config, LiveRequest("alpaca-paper", False, ("AAPL",)),
                                  credentials(), links, tmp_path / "runs",
                                  until=lambda bus: bus.counts().get("md.bars", 0) >= 6)
            return await asyncio.wait_for(session.run(), 30)

    result = asyncio.run(scenario())
    taken = topic_events(result.run_dir, "md.bars")
    assert [b.close for b in taken] == CLOSES
    assert [b.ts_event for b in taken] == sorted({b.ts_event for b in taken})
    assert result.meta["bars_backfilled"] == 2 and result.bars == 6
    query = next(
        c.request.params for c in responses.calls if "/stocks/bars" in c.request.url)
    assert query["start"] == "2024-07-01T14:32:00Z" and query["symbols"] == "AAPL"
    assert replay_run(result.run_dir).identical


def decisions(run_dir: Path) -> list[tuple[str, str]]:
    """(event type, trading state) of each risk decision, in log order."""
    return [(type(e).__name__, getattr(e, "state", None) or e.trading_state)
            for e in topic_events(run_dir, "risk.decisions")]


@responses.activate
def test_live_run_when_broker_state_differs_then_halted_and_no_order_sent(tmp_path):
    alpaca = FakeAlpaca(positions=load("positions"))
    alpaca.install()
    result = run_live(tmp_path, alpaca, [],
                      lambda bus: bus.counts().get("order.requests", 0) >= 1)
    assert alpaca.posts == 0
    assert decisions(result.run_dir) == [("TradingStateChanged", "HALTED"),
                                         ("OrderDenied", "HALTED")]
    differences = [e for e in topic_events(result.run_dir, "broker.reports")
                   if type(e).__name__ == "ReconciliationDifference"]
    assert {(d.kind, d.symbol) for d in differences} == {("position", "AAPL"),
                                                         ("position", "TSLA")}
    assert replay_run(result.run_dir).identical


@responses.activate
def test_live_run_when_config_adopts_then_starts_from_broker_positions_and_cash(tmp_path):
    # AAPL 10, TSLA -3 (TSLA is not streamed: its risk has no return history, and
    # risk, failing closed, would deny every order; so only AAPL here).
    held = load("positions")
    alpaca = FakeAlpaca(positions=held[:1])
    alpaca.install()
    result = run_live(tmp_path, alpaca, [],
                      lambda bus: bus.counts().get("order.requests", 0) >= 1,
                      config_extra=ADOPT)
    assert result.dead_letters == 0
    reports = [type(e).__name__ for e in topic_events(result.run_dir, "broker.reports")]
    assert reports[:4] == ["BrokerAccountDetected", "ReconciliationDifference",
                           "ReconciliationCompleted", "BrokerStateAdopted"]
    fills = topic_events(result.run_dir, "fills")
    assert [(f.symbol, f.side, f.quantity, f.price, f.strategy) for f in fills] == [
        ("AAPL", "BUY", Decimal(10), Decimal("214.35"), "")]
    portfolio = topic_events(result.run_dir, "portfolio")
    adopted = next(p for p in portfolio if type(p).__name__ == "PortfolioValued")
    assert adopted.cash == Decimal(100000)                         # Alpaca's cash
    assert adopted.equity == Decimal(100000) + 10 * 215            # at Alpaca's price
    assert portfolio[0].account_quantity == Decimal(10)
    # Not halted: the differences are recorded and the order goes out.
    assert decisions(result.run_dir)[0] == ("OrderApproved", "ACTIVE")
    assert replay_run(result.run_dir).identical


@responses.activate
def test_live_run_when_operator_acknowledges_reconciliation_then_trading_resumes(tmp_path):
    from click.testing import CliRunner

    from firetape.cli import main

    alpaca = FakeAlpaca(positions=load("positions"))
    alpaca.install()

    async def acknowledge():
        run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
        outcome = CliRunner().invoke(main, ["control", "ack-reconciliation", "--run-dir",
                                            str(run_dir), "--operator", "ops"])
        assert outcome.exit_code == 0, outcome.output
        await asyncio.sleep(0.6)   # the loop polls its inbox every 0.2 s
        return [{"T": "success", "msg": "acknowledged"}]   # ignored by the client

    script = [acknowledge, *bar_script()]
    config = live_config(tmp_path)

    async def scenario():
        async with StreamPeer("data", [script]) as data, StreamPeer("trading", [[]]) as trading:
            links = LiveConnections(
                AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None)),
                data.url, trading.url, FAST)
            session = LiveSession(config, LiveRequest("alpaca-paper", False, ("AAPL",)),
                                  credentials(), links, tmp_path / "runs",
                                  until=lambda bus: bus.counts().get("order.updates", 0) >= 2)
            return await asyncio.wait_for(session.run(), 30)

    result = asyncio.run(scenario())
    assert alpaca.posts == 1
    assert decisions(result.run_dir) == [("TradingStateChanged", "HALTED"),
                                         ("TradingStateChanged", "ACTIVE"),
                                         ("OrderApproved", "ACTIVE")]
    released = topic_events(result.run_dir, "control")[-1]
    assert type(released).__name__ == "ReconciliationAcknowledged" and released.operator == "ops"
    assert replay_run(result.run_dir).identical


@responses.activate
def test_run_command_when_feed_and_broker_alpaca_then_trades_until_ctrl_c(tmp_path,
                                                                          monkeypatch):
    import os
    import signal
    import threading

    from click.testing import CliRunner

    from firetape.cli import main

    alpaca = FakeAlpaca(positions=[])
    alpaca.install()
    filled_sent = threading.Event()

    async def new_update():
        order = await asyncio.to_thread(alpaca.placed.get, timeout=20)
        return trade_update("new", order, "2024-07-01T14:35:00.130Z")

    async def fill_update():
        order = alpaca.fill(next(iter(alpaca.orders.values())))
        filled_sent.set()
        return trade_update("fill", order, "2024-07-01T14:36:00.250Z", execution_id="exec-1",
                            price="11.02", qty=order["qty"], position_qty=order["qty"])

    peers_ready = threading.Event()
    stop_peers = threading.Event()
    urls: dict[str, str] = {}

    def serve_peers():
        async def serve():
            async with StreamPeer("data", [bar_script()]) as data, \
                    StreamPeer("trading", [[new_update, fill_update]]) as trading:
                urls.update(data=data.url, trading=trading.url)
                peers_ready.set()
                while not stop_peers.is_set():
                    await asyncio.sleep(0.05)
        asyncio.run(serve())

    peers = threading.Thread(target=serve_peers, daemon=True)
    peers.start()
    assert peers_ready.wait(10)

    def ctrl_c_after_the_fill():
        if filled_sent.wait(20):
            threading.Event().wait(1.0)   # time for the loop to take the fill in
        os.kill(os.getpid(), signal.SIGINT)

    config = tmp_path / "firetape.toml"
    config.write_text(CONFIG)
    env = {"APCA_API_KEY_ID": credentials().key_id.reveal(),
           "APCA_API_SECRET_KEY": credentials().secret_key.reveal(),
           "FIRETAPE_ALPACA__DATA_STREAM_URL": urls["data"],
           "FIRETAPE_ALPACA__TRADING_STREAM_URL": urls["trading"]}
    threading.Thread(target=ctrl_c_after_the_fill, daemon=True).start()
    try:
        result = CliRunner(env=env).invoke(main, [
            "run", "--feed", "alpaca", "--broker", "alpaca-paper", "--strategy", "sma_cross",
            "--symbols", "AAPL", "--config", str(config), "--runs", str(tmp_path / "runs"),
            "--no-audit"])
    finally:
        stop_peers.set()
        peers.join(10)
    assert result.exit_code == 0, result.output
    assert "replay it:  firetape replay" in result.output
    assert credentials().secret_key.reveal() not in result.output
    assert alpaca.posts == 1
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert len(topic_events(run_dir, "fills")) == 1
    replayed = CliRunner().invoke(main, ["replay", str(run_dir)])
    assert replayed.exit_code == 0 and "identical" in replayed.output


@responses.activate
def test_live_run_when_another_session_holds_the_account_then_refused_and_no_run_made(tmp_path):
    from firetape.runtime.live_lock import AccountBusy, account_lock

    alpaca = FakeAlpaca(positions=[])
    alpaca.install()
    account = load("account_paper")["account_number"]
    with account_lock(tmp_path / "runs", account, "the other session"):
        with pytest.raises(AccountBusy, match=f"account {account} .*the other session"):
            run_live(tmp_path, alpaca, [], filled)
    assert alpaca.posts == 0
    assert not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
