"""The I/O of historical bars: GET /v2/stocks/bars, one page at a time.

alpaca-py's StockHistoricalDataClient builds the URL and the auth headers; paging is done
here, one request per page, so each page goes through the rate limit and its retries and
the fetch can report progress and resume between pages' chunks.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

from connectors.alpaca import wire
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.ratelimit import TokenBucket
from connectors.alpaca.sdk import StockHistoricalDataClient
from connectors.alpaca.timeframes import Timeframe
from connectors.alpaca.transport import DEFAULT_HTTP_TIMEOUT, RequestRunner, bound_session

DATA_URL = "https://data.alpaca.markets"
PAGE_LIMIT = 10_000   # Alpaca's maximum per page


class AlpacaHistory:
    """Historical stock bars, paged, rate-limited and retried."""

    def __init__(self, credentials: AlpacaCredentials, *, base_url: str = "",
                 bucket: TokenBucket | None = None, http_timeout: float = DEFAULT_HTTP_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url or DATA_URL
        self._api = StockHistoricalDataClient(credentials.key_id.reveal(),
                                              credentials.secret_key.reveal(), raw_data=True,
                                              url_override=self.base_url)
        bound_session(self._api, http_timeout)
        # Market data has no orders to keep tokens for.
        self._runner = RequestRunner(self.base_url, bucket or TokenBucket(reserve=0),
                                     sleep=sleep)

    def __repr__(self) -> str:
        return f"AlpacaHistory({self.base_url})"

    def bars(self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime,
             feed: str = "iex", adjustment: str = "raw") -> Iterator[wire.BarsPage]:
        """Every page of bars of `symbols` with start time in [start, end], in order."""
        params = {"symbols": ",".join(symbols), "timeframe": timeframe.text,
                  "start": _rfc3339(start), "end": _rfc3339(end), "limit": PAGE_LIMIT,
                  "feed": feed, "adjustment": adjustment, "sort": "asc"}
        while True:
            page = self._runner.read(lambda: self._api.get("/stocks/bars", dict(params)),
                                     wire.BarsPage)
            yield page
            if not page.next_page_token:
                return
            params["page_token"] = page.next_page_token


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
