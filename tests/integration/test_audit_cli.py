"""`firetape audit` as a user runs it: a subprocess on a real backtest's run directory."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRETAPE = str(Path(sys.executable).with_name("firetape"))


def firetape(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FIRETAPE, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    done = firetape("backtest", "--data", "data/sample/bars.csv", "--strategy", "sma_cross",
                    "--runs", str(runs), "--quiet")
    assert done.returncode == 0, done.stderr
    (found,) = runs.iterdir()
    return found


def sql_json(run_dir: Path, query: str) -> list[dict]:
    done = firetape("audit", "sql", query, "--run", str(run_dir), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_backtest_when_finished_then_audit_written_in_run_dir(run_dir):
    assert (run_dir / "audit").is_dir()
    (row,) = sql_json(run_dir, "SELECT count() AS n FROM events FINAL")
    log_records = sum(json.loads((run_dir / "run.json").read_text())["counts"].values())
    assert row["n"] == log_records


def test_latency_when_run_given_then_every_hop_with_three_decimals(run_dir, tmp_path):
    plot = tmp_path / "latency.png"
    done = firetape("audit", "latency", "--run", str(run_dir), "--strategy", "sma_cross",
                    "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    for hop in ("bar -> signal", "signal -> decision", "decision -> submitted",
                "submitted -> accepted", "accepted -> first_fill", "first_fill -> last_fill",
                "end to end"):
        assert hop in done.stdout
    assert "p99" in done.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_order_when_client_order_id_given_then_events_checks_and_fills(run_dir):
    (row,) = sql_json(run_dir, "SELECT client_order_id FROM fills FINAL ORDER BY ts_event LIMIT 1")
    done = firetape("audit", "order", row["client_order_id"], "--run", str(run_dir))
    assert done.returncode == 0, done.stderr
    for text in ("SubmitOrder", "OrderApproved", "OrderAccepted", "FillExecuted", "risk checks",
                 "gross_exposure", "broker order id(s): paper-"):
        assert text in done.stdout


def test_order_when_unknown_id_then_message_and_exit_1(run_dir):
    done = firetape("audit", "order", "no-such-order", "--run", str(run_dir))
    assert done.returncode == 1
    assert "no order 'no-such-order'" in done.stderr
    assert "Traceback" not in done.stderr


def test_sql_when_malformed_then_message_and_exit_2(run_dir):
    done = firetape("audit", "sql", "SELECT count( FROM events", "--run", str(run_dir))
    assert done.returncode == 2
    assert "Syntax error" in done.stderr and "Traceback" not in done.stderr


def test_sql_when_statement_writes_then_refused_read_only(run_dir):
    done = firetape("audit", "sql", "DROP TABLE fills", "--run", str(run_dir))
    assert done.returncode == 2
    assert "readonly" in done.stderr
    assert sql_json(run_dir, "SELECT count() AS n FROM fills")[0]["n"] > 0


def test_decisions_when_denied_by_reason_then_counts(run_dir):
    done = firetape("audit", "decisions", "--run", str(run_dir), "--denied", "--by", "reason")
    assert done.returncode == 0, done.stderr
    assert "denied" in done.stdout


def test_orders_and_fills_when_filtered_then_listed(run_dir):
    orders = firetape("audit", "orders", "--run", str(run_dir), "--since", "2023-01-01",
                      "--symbol", "SYM001", "--limit", "5")
    fills = firetape("audit", "fills", "--run", str(run_dir), "--until", "2030-01-01")
    assert orders.returncode == 0 and fills.returncode == 0, orders.stderr + fills.stderr
    assert "SYM001" in orders.stdout and "MARKET" in orders.stdout
    assert "fill_id" in fills.stdout


def test_export_when_csv_then_files_written(run_dir, tmp_path):
    done = firetape("audit", "export", "--run", str(run_dir), "--format", "csv", "--out",
                    str(tmp_path / "csv"))
    assert done.returncode == 0, done.stderr
    header = (tmp_path / "csv" / "orders.csv").read_text().splitlines()[0]
    assert '"limit_price"' in header and '"time_in_force"' in header


def test_latency_when_run_dir_has_no_events_then_message_and_exit_1(tmp_path):
    empty = tmp_path / "empty-run"
    (empty / "log").mkdir(parents=True)
    (empty / "run.json").write_text(json.dumps({"run_id": "empty"}))
    done = firetape("audit", "latency", "--run", str(empty))
    assert done.returncode == 1
    assert "holds no events" in done.stderr and "Traceback" not in done.stderr


def test_audit_when_no_database_given_then_message_and_exit_1(tmp_path):
    done = subprocess.run([FIRETAPE, "audit", "latency"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 1
    assert "no audit database" in done.stderr


LEAN_SCRIPT = """
import sys
from firetape.audit.store import open_store
from firetape.audit.queries import latency_rows
store = open_store(sys.argv[1], read_only=True, migrate=False, lean=True)
rows = latency_rows(store)
light = not any(m in sys.modules for m in ("chdb", "pyarrow", "pandas"))
frame = store.query_df("SELECT count() AS n FROM events FINAL")   # switches to the package
store.close()
print(light, rows[0][0], int(frame["n"].iloc[0]) > 0)
"""


def test_lean_store_when_latency_read_then_no_chdb_package_and_dataframes_still_work(run_dir):
    done = subprocess.run([sys.executable, "-c", LEAN_SCRIPT, str(run_dir / "audit")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "bar", "->", "signal", "True"]
