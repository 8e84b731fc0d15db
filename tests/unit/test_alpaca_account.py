"""Paper/live guard and balance protection."""
from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
import responses

from connectors.alpaca import wire
from connectors.alpaca.account import (
    BROKER_LIVE, BROKER_PAPER, TradingRequest, confirm_account, requested_type,
)
from connectors.alpaca.balance import BalanceSnapshot, check_balance
from connectors.alpaca.client import LIVE_URL, PAPER_URL, AlpacaTrading
from connectors.alpaca.config import AlpacaConfig
from connectors.alpaca.errors import AccountMismatch
from connectors.alpaca.ratelimit import TokenBucket
from tests.fixtures.alpaca.recorded import (
    LIVE, LIVE_KEY_ID, PAPER, credentials, load, text,
)

S = 1_000_000_000
PAPER_REQUEST = TradingRequest(BROKER_PAPER, live_flag=False, configured_type="paper")
LIVE_REQUEST = TradingRequest(BROKER_LIVE, live_flag=True, configured_type="live")


def confirm(request, creds, paper: bool):
    client = AlpacaTrading(creds, paper=paper, bucket=TokenBucket(sleep=lambda s: None),
                           attempts=1)
    return confirm_account(request, creds, client.account, client.base_url)


@responses.activate
def test_confirm_when_paper_keys_on_paper_endpoint_then_paper_account():
    responses.get(f"{PAPER}/account", json=load("account_paper"))
    confirmed = confirm(PAPER_REQUEST, credentials(), paper=True)
    assert confirmed.account_type == "paper" and confirmed.endpoint == PAPER_URL
    assert confirmed.account.account_number == "PA3UJX0KZMAM"


@responses.activate
def test_confirm_when_live_opted_in_everywhere_and_broker_agrees_then_live():
    responses.get(f"{LIVE}/account", json=load("account_live"))
    confirmed = confirm(LIVE_REQUEST, credentials(LIVE_KEY_ID), paper=False)
    assert confirmed.account_type == "live" and confirmed.endpoint == LIVE_URL


@pytest.mark.parametrize("request_, message", [
    (TradingRequest(BROKER_LIVE, False, "live"), "needs the explicit --live"),
    (TradingRequest(BROKER_PAPER, True, "paper"), "--live was given but --broker is"),
    (TradingRequest(BROKER_LIVE, True, "paper"), "account_type = 'paper' but"),
    (TradingRequest(BROKER_PAPER, False, "live"), "account_type = 'live' but"),
    (TradingRequest("alpaca", False, "paper"), "unknown broker"),
])
def test_requested_type_when_flag_broker_and_config_disagree_then_refuses(request_, message):
    with pytest.raises(AccountMismatch, match=message):
        requested_type(request_)


@responses.activate
def test_confirm_when_paper_keys_asked_to_trade_live_then_refuses_before_any_request():
    with pytest.raises(AccountMismatch, match="paper keys .* cannot trade live"):
        confirm(LIVE_REQUEST, credentials(), paper=False)
    assert len(responses.calls) == 0


@responses.activate
def test_confirm_when_live_keys_against_paper_endpoint_then_refuses():
    with pytest.raises(AccountMismatch, match="live keys .* cannot trade paper"):
        confirm(PAPER_REQUEST, credentials(LIVE_KEY_ID), paper=True)


@responses.activate
def test_confirm_when_endpoint_refuses_the_keys_then_says_other_environment():
    responses.get(f"{LIVE}/account", body=text("error_unauthorized"), status=401)
    with pytest.raises(AccountMismatch, match="refused these keys .* other environment"):
        confirm(LIVE_REQUEST, credentials("XXUNKNOWNPREFIX"), paper=False)


@responses.activate
def test_confirm_when_live_endpoint_reports_a_paper_account_then_refuses():
    responses.get(f"{LIVE}/account", json=load("account_paper"))
    with pytest.raises(AccountMismatch, match="live endpoint answered with a paper account"):
        confirm(LIVE_REQUEST, credentials(LIVE_KEY_ID), paper=False)


@responses.activate
def test_confirm_when_trading_blocked_then_refuses():
    responses.get(f"{PAPER}/account", json=load("account_paper_blocked"))
    with pytest.raises(AccountMismatch, match="cannot trade: .*trading_blocked=True"):
        confirm(PAPER_REQUEST, credentials(), paper=True)


def snapshot(name: str, read_ns: int = 0) -> BalanceSnapshot:
    return BalanceSnapshot.of(msgspec.convert(load(name), wire.Account, strict=False), read_ns)


def test_check_balance_when_above_minimum_then_passes_with_the_numbers():
    result = check_balance(snapshot("account_paper"), AlpacaConfig(), now_ns=10 * S)
    assert result.passed and result.value == "equity 100000, buying power 200000"
    assert result.limit == ">= 5000"


def test_check_balance_when_below_minimum_then_denied_with_reason_even_in_warn_mode():
    for mode in ("enforce", "warn"):
        result = check_balance(snapshot("account_paper_low_balance"),
                               AlpacaConfig(balance_check=mode), now_ns=0)
        assert not result.passed
        assert result.reason == ("equity 3100.50 < minimum 5000; "
                                 "buying power 3100.50 < minimum 5000")


def test_check_balance_when_account_unreadable_then_denied_fail_closed():
    result = check_balance(None, AlpacaConfig(), now_ns=0)
    assert not result.passed and "could not be read (fail-closed)" in result.reason


def test_check_balance_when_unreadable_and_warn_configured_then_allowed_with_reason():
    result = check_balance(None, AlpacaConfig(balance_check="warn"), now_ns=0)
    assert result.passed and 'balance_check = "warn"' in result.reason


def test_check_balance_when_reading_is_stale_then_counts_as_unreadable():
    result = check_balance(snapshot("account_paper", read_ns=0), AlpacaConfig(),
                           now_ns=301 * S)
    assert not result.passed and "301 s old" in result.reason


def test_config_when_unknown_key_or_bad_value_then_rejected():
    with pytest.raises(msgspec.ValidationError, match="acount_type"):
        msgspec.convert({"acount_type": "live"}, AlpacaConfig)
    with pytest.raises(msgspec.ValidationError, match="balance_check"):
        msgspec.convert({"balance_check": "off"}, AlpacaConfig)
    assert AlpacaConfig().minimum_balance == Decimal(5000)
