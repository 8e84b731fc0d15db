"""What a live session is before it starts: the request, where to connect, its run id and
its run.json. No I/O here beyond building the (lazy) HTTP clients."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.alpaca.account import BROKER_LIVE, ConfirmedAccount
from connectors.alpaca.client import AlpacaTrading
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.history import AlpacaHistory
from connectors.alpaca.ratelimit import Backoff, TokenBucket
from connectors.alpaca.stream import LIVE_TRADING_STREAM_URL, PAPER_TRADING_STREAM_URL
from firetape import __version__
from firetape.config import FiretapeConfig, to_builtins
from firetape.runtime.live_inputs import LIVE_MODE
from firetape.runtime.session import make_run_id

TIMEFRAME = "1Min"          # Alpaca streams minute bars
DATA_URL_VAR = "APCA_API_DATA_URL"   # Alpaca's own variable for the market-data base URL


@dataclass(frozen=True)
class LiveRequest:
    """What the operator asked for on the command line."""

    broker: str                   # alpaca-paper | alpaca-live
    live_flag: bool               # --live
    symbols: tuple[str, ...]
    # Where the run starts from: the newest live run of the account (default), the run
    # named by --carry-from, or nothing (--fresh).
    carry_from: Path | None = None
    fresh: bool = False


@dataclass(frozen=True)
class LiveConnections:
    """Where to connect; tests point these at local peers and recorded HTTP."""

    trading: AlpacaTrading
    data_stream_url: str
    trading_stream_url: str
    backoff: Backoff | None = None
    # Historical bars, to backfill a market-data disconnect; None: no bar backfill.
    history: AlpacaHistory | None = None


def connections(config: FiretapeConfig, request: LiveRequest,
                credentials: AlpacaCredentials) -> LiveConnections:
    """Alpaca's endpoints for the requested environment (config overrides win)."""
    alpaca = config.alpaca
    live = request.broker == BROKER_LIVE
    bucket = TokenBucket(alpaca.rate_limit_per_minute, alpaca.rate_limit_burst,
                         reserve=alpaca.rate_limit_order_reserve)
    trading = AlpacaTrading(credentials, paper=not live, base_url=alpaca.trading_url or None,
                            bucket=bucket, http_timeout=alpaca.http_timeout_seconds)
    data_url = (alpaca.data_stream_url
                or f"wss://stream.data.alpaca.markets/v2/{alpaca.data_feed}")
    trading_url = alpaca.trading_stream_url or (LIVE_TRADING_STREAM_URL if live
                                                else PAPER_TRADING_STREAM_URL)
    # Market data has its own rate limit at Alpaca, hence its own bucket.
    history = AlpacaHistory(
        credentials, base_url=alpaca.data_url or os.environ.get(DATA_URL_VAR, ""),
        bucket=TokenBucket(alpaca.rate_limit_per_minute, alpaca.rate_limit_burst,
                           reserve=0),   # no orders on the market-data API
        http_timeout=alpaca.http_timeout_seconds)
    return LiveConnections(trading, data_url, trading_url, history=history)


def live_run_id(config: FiretapeConfig, request: LiveRequest, account_number: str,
                account_type: str) -> str:
    """The same for every start of the same config, account and symbols, never the clock.

    A restart therefore derives the same client order ids for the same bars, and the
    idempotent submit finds an order the previous start already placed instead of
    placing it again.
    """
    digest = hashlib.sha256("|".join(
        ("alpaca", account_type, account_number, TIMEFRAME, *request.symbols)).encode())
    return make_run_id(config, digest.hexdigest(), LIVE_MODE)


def live_meta(config: FiretapeConfig, request: LiveRequest, run_id: str,
              confirmed: ConfirmedAccount, previous: Path | None) -> dict:
    """run.json of a live run; `firetape replay` reads `mode` and `config` from it."""
    return {
        "run_id": run_id, "mode": LIVE_MODE, "firetape_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": to_builtins(config), "strategies": list(config.run.strategies),
        "live": {"broker": request.broker, "account_type": confirmed.account_type,
                 "account_number": confirmed.account.account_number,
                 "endpoint": confirmed.endpoint, "symbols": list(request.symbols),
                 "timeframe": TIMEFRAME,
                 # the run whose final state this one carries over (None: started flat)
                 "previous_run": str(previous) if previous is not None else None,
                 "fresh": request.fresh},
        "completed": False,
    }
