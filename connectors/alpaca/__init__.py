"""Alpaca: market data in, orders out, fills back; paper by default, live only on purpose.

One job per module:
    wire        msgspec Structs mirroring Alpaca's JSON (account, order, position, bars,
                stream messages, trade updates)
    parse       pure translations wire -> firetape events (and PlaceOrder -> order body)
    timeframes  Alpaca's bar timeframes and when such a bar closes
    credentials keys from the environment, masked everywhere
    transport   one rate-limited, mapped, retried request; HTTP timeouts
    ratelimit   token bucket under the per-account limit, tokens reserved for orders;
                429 backoff
    client      trading calls; idempotent submit (lookup by client order id first)
    executor    the calls awaited from asyncio in bounded pools with timeouts
    history     historical bars, paged (the fetch, and the bar stream's backfill)
    fetch       `firetape fetch alpaca`: resumable chunked Parquet download
    account     paper/live guard
    balance     equity/buying-power minimum, fail-closed
    reconcile   start-up reconciliation against the event-sourced state; the halt, or
                the broker's state to adopt
    inbox       operator commands for a running session (ack-reconciliation)
    execution   the pure execution stage for Alpaca (replaces the paper broker)
    reports     Alpaca's answers as broker-report input events (schemas/broker.py)
    stream      market-data and trade-update websockets, reconnect, backfill
    config      the [alpaca] config section
    cli         `firetape fetch alpaca`, `firetape control ack-reconciliation`
    sdk         the alpaca-py imports, in one place

Nothing is imported here, so `import connectors.alpaca.parse` does not load alpaca-py.
"""
