import json

import structlog

from firetape.logs import MASK, configure_logging


def test_log_when_fields_look_like_credentials_then_values_are_masked(capsys):
    configure_logging("info", "json")
    structlog.get_logger().info("connecting", api_key="AKXXXXSECRET", secret_key="s3cr3t",
                                APCA_API_SECRET_KEY="zzz", authorization="Bearer t0k",
                                symbol="AAPL")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["symbol"] == "AAPL"
    for name in ("api_key", "secret_key", "APCA_API_SECRET_KEY", "authorization"):
        assert record[name] == MASK
    assert "SECRET" not in line.replace("APCA_API_SECRET_KEY", "") and "s3cr3t" not in line


def test_log_when_level_is_warning_then_info_is_dropped(capsys):
    configure_logging("warning", "json")
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")
    err = capsys.readouterr().err
    assert "loud" in err and "quiet" not in err
