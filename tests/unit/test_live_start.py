"""The start of a live run against a broker that answers from memory: carry over, catch
up, reconcile; and, when the config adopts, only the directions carry."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec

from agents.context import Context
from connectors.alpaca import wire
from connectors.alpaca.config import AlpacaConfig
from connectors.alpaca.execution import AlpacaExecution
from firetape.config import load_config
from firetape.runtime.bus import EmbeddedBus
from firetape.runtime.live_carryover import CarriedState
from firetape.runtime.live_start import start_state
from firetape.runtime.pipeline import build_stages
from schemas import (
    BrokerOrderRefused, BrokerStateAdopted, ReconciliationCompleted, ReconciliationDifference,
    StateCarriedOver,
)
from schemas.broker import WorkingOrder
from schemas.carryover import CarriedDirection, CarriedLot, CarriedMark
from tests.fixtures.alpaca.recorded import load

RUN = "live-run"
NOW = 1_719_844_200_000_000_000     # 2024-07-01T14:30:00Z
ACCOUNT = "paper"


class MemoryBroker:
    """What a start reads from Alpaca, answered from lists (no HTTP)."""

    def __init__(self, positions=(), open_orders=(), history=(), known=()) -> None:
        self._positions = [msgspec.convert(p, wire.Position, strict=False) for p in positions]
        self._open = [msgspec.convert(o, wire.Order, strict=False) for o in open_orders]
        self._history = [msgspec.convert(o, wire.Order, strict=False) for o in history]
        self._known = {o["client_order_id"]: msgspec.convert(o, wire.Order, strict=False)
                       for o in known}
        self.lookups: list[str] = []

    async def positions(self):
        return self._positions

    async def open_orders(self):
        return self._open

    async def orders_since(self, after: str):
        return self._history

    async def order_by_client_id(self, client_order_id: str):
        self.lookups.append(client_order_id)
        return self._known.get(client_order_id)


def aapl(qty: str) -> dict:
    return {**load("positions")[0], "qty": qty, "qty_available": qty}


def alpaca_order(client_id: str, **changes) -> dict:
    return {**load("order_new"), "id": f"alp-{client_id}", "client_order_id": client_id,
            "symbol": "AAPL", "qty": "5", "side": "buy", **changes}


def carried(orders=()) -> CarriedState:
    return CarriedState(
        Path("runs/20240701T140000Z-abc"), "abc", Decimal(90000),
        (CarriedLot(strategy="sma_cross", symbol="AAPL", quantity=Decimal(10),
                    price=Decimal(200)),),
        (CarriedMark(symbol="AAPL", price=Decimal(215)),), tuple(orders),
        (CarriedDirection(strategy="sma_cross", symbol="AAPL", direction=1),
         CarriedDirection(strategy="sma_cross", symbol="MSFT", direction=1)))


def working(client_id: str, **changes) -> WorkingOrder:
    fields = dict(client_order_id=client_id, symbol="AAPL", side="BUY", quantity=Decimal(5),
                  strategy="sma_cross", correlation_id=f"chain-{client_id}",
                  placed_ns=NOW - 60 * 10**9)
    return WorkingOrder(**{**fields, **changes})


def start(broker: MemoryBroker, state: CarriedState | None, reconciliation: str = "halt"):
    config = load_config(None, environ={})
    config = msgspec.structs.replace(config, alpaca=msgspec.structs.replace(
        config.alpaca, reconciliation=reconciliation))
    execution = AlpacaExecution(Context(RUN, "execution", ACCOUNT), AlpacaConfig())
    bus = EmbeddedBus(build_stages(config, RUN, execution), None, RUN)
    taken: list = []

    def take(event) -> None:
        taken.append(event)
        bus.publish(event)

    stamps = iter(range(NOW + 1, NOW + 1000))
    seen = asyncio.run(start_state(take, lambda: next(stamps), broker, bus.stages, state,
                                   config, RUN, NOW, Decimal(100000), ("AAPL",)))
    return taken, {stage.name: stage for stage in bus.stages}, seen


def test_start_when_nothing_changed_at_alpaca_then_carried_clean_and_orders_followed():
    sent = working("ft-sent", broker_order_id="alp-ft-sent", accepted=True)
    broker = MemoryBroker([aapl("10")], [alpaca_order("ft-sent", status="new")],
                          history=[alpaca_order("ft-sent", status="new")])
    taken, stages, seen = start(broker, carried([sent]))
    assert [type(e) for e in taken] == [StateCarriedOver, ReconciliationCompleted]
    assert taken[-1].resolution == "clean"
    assert stages["execution"].working_orders() == (sent,)
    assert list(seen) == ["alp-ft-sent"] and broker.lookups == []
    assert [e.ts_init for e in taken] == sorted({e.ts_init for e in taken})


def test_start_when_carried_order_never_reached_alpaca_then_closed_not_a_difference():
    unsent = working("ft-unsent")          # approved, no answer from Alpaca recorded
    broker = MemoryBroker([aapl("10")])
    taken, stages, _ = start(broker, carried([unsent]))
    assert broker.lookups == ["ft-unsent"]
    assert [type(e) for e in taken] == [StateCarriedOver, BrokerOrderRefused,
                                        ReconciliationCompleted]
    assert "never reached Alpaca" in taken[1].reason
    assert taken[-1].resolution == "clean"
    assert stages["execution"].working_orders() == ()
    assert stages["allocator"].pending[("sma_cross", "AAPL")] == 0


def test_start_when_carried_order_answer_was_lost_but_alpaca_has_it_then_followed():
    unanswered = working("ft-lost")
    at_alpaca = alpaca_order("ft-lost", status="filled", filled_qty="5",
                             filled_avg_price="201", submitted_at="2024-07-01T14:29:30Z")
    broker = MemoryBroker([aapl("15")], known=[at_alpaca])
    taken, stages, _ = start(broker, carried([unanswered]))
    assert taken[-1].resolution == "clean"
    assert stages["portfolio"].positions == {"AAPL": Decimal(15)}
    assert stages["allocator"].position[("sma_cross", "AAPL")] == Decimal(15)


def test_start_when_position_differs_then_halted_against_the_carried_state():
    taken, _, _ = start(MemoryBroker([aapl("12")]), carried())
    differences = [e for e in taken if isinstance(e, ReconciliationDifference)]
    assert [(d.kind, d.broker_value, d.local_value) for d in differences] == [
        ("position", "12", "10")]
    assert taken[-1].resolution == "halted"


def test_start_when_config_adopts_then_broker_state_taken_and_only_kept_directions_carry():
    taken, stages, _ = start(MemoryBroker([aapl("10")], [alpaca_order("web-1")]), carried(),
                             reconciliation="adopt")
    carried_event = taken[0]
    assert isinstance(carried_event, StateCarriedOver)
    assert carried_event.cash is None and carried_event.lots == ()
    adopted = taken[-1]
    assert isinstance(adopted, BrokerStateAdopted)
    # AAPL agreed with the carried sleeve: it stays there, with its direction.
    assert [(p.strategy, p.quantity) for p in adopted.positions] == [("sma_cross", 10)]
    assert [(o.client_order_id, o.strategy) for o in adopted.orders] == [("web-1", "")]
    assert stages["allocator"].direction[("sma_cross", "AAPL")] == 1
    assert stages["portfolio"].cash == Decimal(100000)


def test_start_when_fresh_then_nothing_carried_and_alpacas_position_is_a_difference():
    taken, _, _ = start(MemoryBroker([aapl("10")]), None)
    assert not any(isinstance(e, StateCarriedOver) for e in taken)
    assert taken[-1].resolution == "halted" and taken[-1].differences == 1


class FillingBroker(MemoryBroker):
    """The carried order fills while the start reads Alpaca: the catch-up's orders read
    still shows it open, the positions and open orders read just after already show the
    fill, and so does every orders read after that."""

    def __init__(self, open_order: dict, filled: dict) -> None:
        super().__init__([aapl("15")], [], history=[open_order])
        self._filled = msgspec.convert(filled, wire.Order, strict=False)
        self.orders_reads = 0

    async def orders_since(self, after: str):
        self.orders_reads += 1
        return self._history if self.orders_reads == 1 else [self._filled]


def test_start_when_carried_order_fills_between_the_reads_then_taken_and_clean():
    sent = working("ft-sent", broker_order_id="alp-ft-sent", accepted=True)
    broker = FillingBroker(
        alpaca_order("ft-sent", status="new"),
        alpaca_order("ft-sent", status="filled", filled_qty="5", filled_avg_price="201",
                     filled_at="2024-07-01T14:30:00.500Z"))
    taken, stages, seen = start(broker, carried([sent]))
    # read once for the catch-up, then twice: the fill found, then nothing new
    assert broker.orders_reads == 3
    kinds = [type(e).__name__ for e in taken]
    assert kinds == ["StateCarriedOver", "BrokerTradeUpdate", "ReconciliationCompleted"]
    assert taken[1].backfilled and taken[-1].resolution == "clean"
    assert stages["portfolio"].positions == {"AAPL": Decimal(15)}
    assert stages["execution"].working_orders() == ()
    assert seen["alp-ft-sent"].filled_qty == Decimal(5)
