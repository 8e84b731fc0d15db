"""Benchmarks of the audit: ingest into chdb, and `audit latency` over millions of events.

Run:  .venv/bin/python bench/bench_audit.py [--ingest-events 1000000] [--latency-events 10000000]
                                            [--batches 10000,50000,100000,250000,1000000]
                                            [--from-log RUN_DIR]

1. Ingest, end to end from event-log records (in memory) to rows committed in chdb: the
   `events` table and every typed table (orders, lifecycle, fills, risk checks, portfolio),
   for batches of 10k, 50k, 100k (ClickHouse's advice), 250k (the default of a run's
   ingest) and 1M rows. The records mimic a real run's mix: per order chain ten bars, a
   signal, a request, a decision with 14 checks, the order, its updates, a fill, a
   position and a valuation. Reported: events/s in wall time and in this process's CPU
   time (chdb's threads included), medians of `--repeat` runs; on a shared machine the
   CPU figure is the fairer one. A last line gives the bars-only rate.
   With `--from-log RUN_DIR`, the same for a real run's event log (a backtest's own mix:
   in `make bench`'s run, 77 % bars and an order chain every 29 bars), then the whole
   build of a run's audit from the log files on disk, reading and checking them included
   (what a user waits for after a backtest).
2. Latency: `--latency-events` events synthesised inside ClickHouse (same inbox, same
   views), then each order's bar and signal resolved into order_hops as a run's ingest
   does (timed apart), then the latency query timed in-process and as
   `firetape audit latency --db` (wall and the child's CPU time), medians of `--repeat`;
   then the other reads (one order, decisions, orders, fills) in-process.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firetape.audit import queries  # noqa: E402
from firetape.audit.chdb_store import ChdbStore  # noqa: E402
from firetape.audit.ingest import compact_order_hops, ingest_records  # noqa: E402
from firetape.eventlog import Record  # noqa: E402

T0 = 1_704_205_800_000_000_000
WALL0 = 1_790_000_000_000_000_000
RUN = "bench0000000000"
CHAIN = 21   # events per order chain
CHECKS = ",".join(
    f'{{"name":"check_{i}","passed":true,"value":"0.{i}1234","limit":"0.{i}5","reason":""}}'
    for i in range(14))


def _h(event_type: str, event_id: str, ts: int, corr: str, cause: str, producer: str) -> str:
    return (f'{{"type":"{event_type}","event_id":"{event_id}","ts_event":{ts},"ts_init":{ts},'
            f'"correlation_id":"{corr}","causation_id":"{cause}","producer":"{producer}",'
            f'"run_id":"{RUN}","schema_version":1')


def chain_records(n: int, offsets: dict) -> list[Record]:
    """The 21 records of order chain `n`."""
    ts = T0 + n * 60_000_000_000
    sym = f"SYM{n % 50:03d}"
    bar = f"{sym}:{ts}"
    cid = f"ft-{n:024x}"
    wall = WALL0 + n * 2_000_000
    order = f',"client_order_id":"{cid}","account":"paper","strategy":"sma_cross","symbol":"{sym}"'
    terms = (order + ',"side":"BUY","quantity":"100","order_type":"MARKET","limit_price":null,'
             '"stop_price":null,"time_in_force":"GTC","security_type":"EQUITY",'
             '"ref_price":101.5,"reduce_only":false,"stop_loss":null,"take_profit":null,'
             '"parent_id":""')
    values = []
    for k in range(10):
        values.append(("md.bars", f"SYM{(n + k) % 50:03d}",
                       _h("Bar", f"{bar}:{k}" if k < 9 else bar, ts, bar, "", "feed")
                       + f',"symbol":"{sym}","open":101.0,"high":102.0,"low":100.5,'
                         f'"close":101.5,"volume":123456.0}}'))
    values += [
        ("signals", sym, _h("SignalGenerated", f"s{n}", ts, bar, bar, "strategy")
         + f',"strategy":"sma_cross","symbol":"{sym}","direction":1,"confidence":1.0,'
           f'"price":101.5,"volatility":0.0}}'),
        ("order.requests", "paper", _h("SubmitOrder", f"r{n}", ts, bar, f"s{n}", "allocator")
         + terms + "}"),
        ("risk.decisions", "paper", _h("OrderApproved", f"d{n}", ts, bar, f"r{n}", "risk")
         + order + f',"side":"BUY","quantity":"100","trading_state":"ACTIVE",'
                   f'"checks":[{CHECKS}]}}'),
        ("orders", "paper", _h("PlaceOrder", f"p{n}", ts, bar, f"r{n}", "risk") + terms
         + f',"decision_id":"d{n}"}}'),
        ("order.updates", "paper", _h("OrderSubmitted", f"u{n}", ts, bar, f"p{n}", "execution")
         + f',"client_order_id":"{cid}","account":"paper","symbol":"{sym}"}}'),
        ("order.updates", "paper", _h("OrderAccepted", f"a{n}", ts, bar, f"p{n}", "execution")
         + f',"client_order_id":"{cid}","account":"paper","symbol":"{sym}",'
           f'"broker_order_id":"paper-{n:016x}"}}'),
        ("fills", "paper", _h("FillExecuted", f"f{n}", ts, bar, f"p{n}", "execution")
         + f',"fill_id":"fi{n}","client_order_id":"{cid}","broker_order_id":"paper-{n:016x}",'
           f'"account":"paper","strategy":"sma_cross","symbol":"{sym}","side":"BUY",'
           f'"quantity":"100","price":"101.5123","commission":"1.5","leaves_quantity":"0"}}'),
        ("order.updates", "paper", _h("OrderFilled", f"o{n}", ts, bar, f"p{n}", "execution")
         + f',"client_order_id":"{cid}","account":"paper","symbol":"{sym}",'
           f'"filled_quantity":"100","avg_price":"101.5123"}}'),
        ("portfolio", "paper", _h("PositionChanged", f"q{n}", ts, bar, f"f{n}", "portfolio")
         + f',"account":"paper","strategy":"sma_cross","symbol":"{sym}","quantity":"100",'
           f'"avg_price":"101.5123","realized_pnl":"-1.5","fill_id":"fi{n}",'
           f'"account_quantity":"100"}}'),
        ("portfolio", "paper", _h("PortfolioValued", f"v{n}", ts, bar, f"f{n}", "portfolio")
         + ',"account":"paper","cash":"989848.77","equity":"999998.5","gross_exposure":'
           '"10151.23","net_exposure":"10151.23","realized_pnl":"-1.5","unrealized_pnl":"0",'
           '"commissions":"1.5","high_water_mark":"1000000","drawdown":"0.0000015"}'),
    ]
    records = []
    for i, (topic, key, value) in enumerate(values):
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        records.append(Record(topic, 0, offset, ts, wall + i * 37_000, key.encode(),
                              value.encode()))
    return records


def make_records(count: int, bars_only: bool = False) -> list[Record]:
    offsets: dict = {}
    records: list[Record] = []
    n = 0
    while len(records) < count:
        chain = chain_records(n, offsets)
        records.extend(chain[:10] if bars_only else chain)
        n += 1
    return records[:count]


def timed_ingests(count: int, repeat: int, ingest) -> tuple[float, float]:
    """Median wall and CPU rates (events/s) of `ingest(store)`, which puts `count` events
    into a fresh database, `repeat` times (a new database each time)."""
    walls, cpus = [], []
    for _ in range(repeat):
        directory = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        store = ChdbStore(directory)
        store.migrate()
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            ingest(store)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert int(store.scalar("SELECT count() FROM events FINAL")) == count
        finally:
            store.close()
            shutil.rmtree(directory, ignore_errors=True)
        walls.append(count / wall)
        cpus.append(count / cpu)
    return statistics.median(walls), statistics.median(cpus)


def bench_ingest(records: list[Record], batch_rows: int, repeat: int) -> tuple[float, float]:
    """Rates of ingesting `records`, held in memory, in batches of `batch_rows`."""
    return timed_ingests(len(records), repeat,
                         lambda store: ingest_records(store, records, batch_rows))


def bench_run_log(run_dir: Path, batches: list[int], repeat: int) -> None:
    """Ingest rates of a real run's records (a backtest's mix: mostly bars, an order
    chain every few dozen of them), held in memory as the sink holds a batch."""
    from firetape.audit.ingest import log_records
    from firetape.eventlog import EventLog

    with EventLog(run_dir / "log", mode="r") as log:
        records = list(log_records(log))
    bars = sum(1 for record in records if record.topic == "md.bars")
    print(f"ingest of {run_dir.name}'s log, {len(records):,} events ({bars:,} bars):")
    for batch_rows in batches:
        wall, cpu = bench_ingest(records, batch_rows, repeat)
        print(f"  its mix,   batches of {batch_rows:>7,}: {wall:>10,.0f} events/s wall  "
              f"{cpu:>10,.0f} events/s per CPU-second")
    count = len(records)
    del records
    wall, cpu = bench_run_audit(run_dir / "log", count, repeat)
    print(f"  from the log on disk, as a run's audit is built (read, ingest, resolve, fold): "
          f"{wall:>10,.0f} events/s wall  {cpu:>10,.0f} events/s per CPU-second")


def bench_run_audit(log_dir: Path, count: int, repeat: int) -> tuple[float, float]:
    """Rates of building a run's audit from its log files (what `firetape backtest` does
    after a run): reading and checking the log is part of the time."""
    from firetape.audit.ingest import ingest_log

    def build(store: ChdbStore) -> None:
        ingest_log(store, log_dir)
        compact_order_hops(store)

    return timed_ingests(count, repeat, build)


SYNTH_SQL = """
INSERT INTO events_inbox
SELECT
    topic, 0 AS partition, number AS offset, NULL AS kafka_ts_ms,
    {wall0:Int64} + intDiv(number, 21) * 2000000 + (number % 21) * 37000
        + (cityHash64(number) % 50000) AS ts_ingest_ns,
    'bench' AS host, 'CLOCK_REALTIME' AS clock_source, 'paper' AS record_key,
    concat('{"type":"', type, '","event_id":"', event_id, '","ts_event":', toString(ts),
           ',"ts_init":', toString(ts), ',"correlation_id":"', bar, '","causation_id":"', cause,
           '","producer":"bench","run_id":"bench","schema_version":1', body, '}') AS payload
FROM
(
    SELECT number, intDiv(number, 21) AS chain, number % 21 AS k,
        {t0:Int64} + chain * 60000000000 AS ts,
        concat('SYM', toString(chain % 50), ':', toString(ts)) AS bar,
        concat('ft-', toString(chain)) AS cid,
        concat(',"client_order_id":"', cid, '","account":"paper","strategy":"',
               if(chain % 3 = 0, 'momentum', 'sma_cross'), '","symbol":"SYM',
               toString(chain % 50), '","side":"BUY","quantity":"100"') AS order_fields,
        chain % 8 = 0 AS denied,
        multiIf(k < 10 OR (denied AND k BETWEEN 13 AND 19), 'Bar', k = 10, 'SignalGenerated',
                k = 11, 'SubmitOrder', k = 12, if(denied, 'OrderDenied', 'OrderApproved'),
                k = 13, 'PlaceOrder', k = 14, 'OrderSubmitted', k = 15, 'OrderAccepted',
                k = 16, 'FillExecuted', k = 17, 'OrderFilled', k = 18, 'PositionChanged',
                k = 19, 'PortfolioValued', 'Bar') AS type,
        multiIf(type = 'Bar', 'md.bars', type = 'SignalGenerated', 'signals',
                type = 'SubmitOrder', 'order.requests', type LIKE 'Order%ed' AND k = 12,
                'risk.decisions', type = 'PlaceOrder', 'orders', type = 'FillExecuted', 'fills',
                type IN ('PositionChanged', 'PortfolioValued'), 'portfolio', 'order.updates')
            AS topic,
        if(k = 9, bar, concat(type, '-', toString(number))) AS event_id,
        multiIf(k = 10, bar, k = 11, concat('SignalGenerated-', toString(chain * 21 + 10)),
                k > 11, concat('SubmitOrder-', toString(chain * 21 + 11)), '') AS cause,
        multiIf(type IN ('SubmitOrder', 'PlaceOrder'), concat(order_fields,
                    ',"order_type":"MARKET","time_in_force":"GTC","security_type":"EQUITY"'),
                type IN ('OrderApproved', 'OrderDenied'), concat(order_fields,
                    ',"trading_state":"ACTIVE","checks":[{"name":"gross_exposure","passed":',
                    if(denied, 'false', 'true'), ',"value":"0.31","limit":"0.3","reason":""}]',
                    if(denied, ',"reasons":["gross exposure 0.31 above 0.3"]', '')),
                type = 'FillExecuted', concat(',"fill_id":"f', toString(chain), '"',
                    order_fields, ',"broker_order_id":"b', toString(chain),
                    '","price":"101.5","commission":"1","leaves_quantity":"0"'),
                type LIKE 'Order%', concat(',"client_order_id":"', cid,
                    '","account":"paper","symbol":"SYM', toString(chain % 50), '"'),
                type = 'SignalGenerated', ',"strategy":"sma_cross","direction":1',
                type = 'Bar', concat(',"symbol":"SYM', toString(chain % 50),
                    '","open":1.0,"high":1.0,"low":1.0,"close":1.0,"volume":1.0'),
                ',"account":"paper"') AS body
    FROM numbers({start:UInt64}, {count:UInt64})
)
"""


def synthesise(store: ChdbStore, events: int, step: int = 1_000_000) -> None:
    """`events` events of order chains, generated and inserted by ClickHouse itself."""
    for start in range(0, events, step):
        store.execute(SYNTH_SQL, {"wall0": WALL0, "t0": T0, "start": start,
                                  "count": min(step, events - start)})


def bench_latency(events: int, repeat: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-audit-latency-"))
    try:
        store = ChdbStore(directory)
        store.migrate()
        started = time.perf_counter()
        synthesise(store, events)
        print(f"  synthesised {events:,} events in {time.perf_counter() - started:.1f} s "
              f"(inside ClickHouse)")
        wall, cpu = time.perf_counter(), time.process_time()
        queries.resolve_order_origins(store)
        compact_order_hops(store)
        print(f"  resolved bars and signals into order_hops, folded it (as a run's ingest "
              f"does): "
              f"{time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
        walls, cpus = [], []
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            summary = queries.latency_rows(store)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        orders = max(row[1] for row in summary)
        print(f"  latency query, in-process:      median {statistics.median(walls):.3f} s wall "
              f"{statistics.median(cpus):.3f} s CPU  ({orders:,} orders, {events:,} events)")
        some_order = store.scalar("SELECT client_order_id FROM order_hops LIMIT 1 OFFSET 1000")
        reads = (("order (one order's audit)", lambda: queries.order_audit(store, some_order)),
                 ("decisions --by reason", lambda: queries.decisions(store, by="reason")),
                 ("decisions --denied (100)", lambda: queries.decisions(store, denied=True)),
                 ("orders (100)", lambda: queries.orders(store)),
                 ("fills (100)", lambda: queries.fills(store)))
        for name, read in reads:
            walls, cpus = [], []
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                read()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            print(f"  {name + ', in-process:':<32} median {statistics.median(walls):.3f} s wall "
                  f"{statistics.median(cpus):.3f} s CPU")
        store.close()
        cli = str(Path(sys.executable).with_name("firetape"))
        walls, cpus = [], []
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.perf_counter()
            done = subprocess.run([cli, "audit", "latency", "--db", str(directory)],
                                  capture_output=True, text=True, env=os.environ.copy())
            walls.append(time.perf_counter() - wall)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            assert done.returncode == 0, done.stderr
        print(f"  `firetape audit latency --db`:  median {statistics.median(walls):.3f} s wall "
              f"{statistics.median(cpus):.3f} s CPU  (whole command: Python start-up, chdb "
              f"open, query, table)")
        print(done.stdout)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-events", type=int, default=1_000_000)
    parser.add_argument("--latency-events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batches", type=lambda text: [int(x) for x in text.split(",")],
                        default=[10_000, 50_000, 100_000, 250_000, 1_000_000],
                        help="batch sizes to measure, comma-separated")
    parser.add_argument("--from-log", type=Path, metavar="RUN_DIR",
                        help="also ingest a real run's event log (RUN_DIR/log), read into "
                             "memory first, for its own mix of events")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()

    print(f"cpus: {os.cpu_count()}  load average: {os.getloadavg()[0]:.2f}")
    if not args.skip_ingest:
        print(f"ingest into chdb, {args.ingest_events:,} events (records -> committed rows):")
        mixed = make_records(args.ingest_events)
        for batch_rows in args.batches:
            wall, cpu = bench_ingest(mixed, batch_rows, args.repeat)
            print(f"  run mix,   batches of {batch_rows:>7,}: {wall:>10,.0f} events/s wall  "
                  f"{cpu:>10,.0f} events/s per CPU-second")
        bars = make_records(args.ingest_events, bars_only=True)
        wall, cpu = bench_ingest(bars, 100_000, args.repeat)
        print(f"  bars only, batches of 100,000: {wall:>10,.0f} events/s wall  "
              f"{cpu:>10,.0f} events/s per CPU-second")
        del mixed, bars
    if args.from_log is not None:
        bench_run_log(args.from_log, args.batches, args.repeat)
    if not args.skip_latency:
        print(f"latency over {args.latency_events:,} events:")
        bench_latency(args.latency_events, args.repeat)


if __name__ == "__main__":
    main()
