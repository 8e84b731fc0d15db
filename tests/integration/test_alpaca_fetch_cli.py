"""`firetape fetch alpaca` as a subprocess against a local HTTP server that serves the
recorded bars responses, then `firetape backtest` on what it wrote."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.fixtures.alpaca.recorded import SECRET, environ, text

REPO = Path(__file__).resolve().parents[2]


class RecordedBars(BaseHTTPRequestHandler):
    """GET /v2/stocks/bars from the fixtures, paging by page_token like Alpaca."""

    seen_auth: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        query = parse_qs(urlparse(self.path).query)
        RecordedBars.seen_auth.append(self.headers.get("APCA-API-KEY-ID", ""))
        symbol = query["symbols"][0]
        if symbol == "AAPL":
            name = "bars_AAPL_1Min_page2" if "page_token" in query else "bars_AAPL_1Min_page1"
        else:
            name = "bars_MSFT_1Min"
        body = text(name).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def firetape(*args, env):
    return subprocess.run([sys.executable, "-m", "firetape.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_fetch_cli_when_served_recorded_bars_then_backtest_reads_the_files(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordedBars)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, **environ(),
           "APCA_API_DATA_URL": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        fetched = firetape("fetch", "alpaca", "--symbols", "AAPL,MSFT", "--start", "2024-01-02",
                           "--end", "2024-01-03", "--timeframe", "1Min", "--out",
                           str(tmp_path / "data"), env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert fetched.returncode == 0, fetched.stderr
    assert "wrote 7 bars in 2 file(s)" in fetched.stdout
    assert SECRET not in fetched.stdout + fetched.stderr
    assert len(RecordedBars.seen_auth) == 3   # AAPL twice (two pages), MSFT once
    backtest = firetape("backtest", "--data", str(tmp_path / "data"), "--runs",
                        str(tmp_path / "runs"), "--quiet", "--json", str(tmp_path / "r.json"),
                        env=env)
    assert backtest.returncode == 0, backtest.stderr
    assert json.loads((tmp_path / "r.json").read_text())["bars"] == 7
