"""Paper or live: what the operator asked for, what the keys are, what Alpaca confirms.

Live trading happens only when four things agree (DESIGN rule 7): the broker chosen on
the command line (`--broker alpaca-live`), the explicit `--live` flag, the config
(`alpaca.account_type = "live"`), and Alpaca's live endpoint answering for these keys
with a live account. Anything else is paper, or a refusal to start that says which of
them disagrees. Alpaca's keys belong to one environment (paper keys start "PK", live
keys "AK"; paper account numbers start "PA"), so the checks below can tell a mix-up
before and after the first request.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.alpaca import wire
from connectors.alpaca.credentials import AlpacaCredentials
from connectors.alpaca.errors import AccountMismatch, BrokerRefused
from schemas.broker import LIVE, PAPER

BROKER_PAPER = "alpaca-paper"
BROKER_LIVE = "alpaca-live"
_KEY_TYPES = {"PK": PAPER, "AK": LIVE}


@dataclass(frozen=True)
class TradingRequest:
    """What the operator asked for, from the command line and the config."""

    broker: str           # alpaca-paper | alpaca-live
    live_flag: bool       # --live
    configured_type: str  # alpaca.account_type


@dataclass(frozen=True)
class ConfirmedAccount:
    """An account Alpaca confirmed is of the requested type."""

    account_type: str
    account: wire.Account
    endpoint: str


def requested_type(request: TradingRequest) -> str:
    """The account type the request means, or AccountMismatch naming the disagreement."""
    if request.broker not in (BROKER_PAPER, BROKER_LIVE):
        raise AccountMismatch(f"unknown broker {request.broker!r}; use {BROKER_PAPER} or "
                              f"{BROKER_LIVE}")
    wants_live = request.broker == BROKER_LIVE
    if wants_live and not request.live_flag:
        raise AccountMismatch(f"refusing to trade live: --broker {BROKER_LIVE} needs the "
                              f"explicit --live flag as well")
    if request.live_flag and not wants_live:
        raise AccountMismatch(f"--live was given but --broker is {request.broker}; use "
                              f"--broker {BROKER_LIVE} to trade live")
    wanted = LIVE if wants_live else PAPER
    if request.configured_type != wanted:
        raise AccountMismatch(f"the config says alpaca.account_type = "
                              f"{request.configured_type!r} but --broker {request.broker} "
                              f"asks for {wanted}; make them agree")
    return wanted


def key_type(credentials: AlpacaCredentials) -> str:
    """"paper" or "live" from the key id's prefix; "" when the prefix is not a known one."""
    return _KEY_TYPES.get(credentials.key_prefix, "")


def detected_type(account: wire.Account, endpoint_type: str) -> str:
    """The type of the account that answered: paper account numbers start "PA"."""
    number_type = PAPER if account.account_number.startswith("PA") else LIVE
    if number_type != endpoint_type:
        raise AccountMismatch(f"the {endpoint_type} endpoint answered with a {number_type} "
                              f"account (number {account.account_number}); refusing to start")
    return number_type


def confirm_account(request: TradingRequest, credentials: AlpacaCredentials,
                    read_account: Callable[[], wire.Account], endpoint: str) -> ConfirmedAccount:
    """Run every check; return the confirmed account or raise AccountMismatch.

    `read_account` is GET /v2/account on the endpoint of the requested type (the client
    built for it), so a successful answer is the broker confirming the environment.
    """
    wanted = requested_type(request)
    keys = key_type(credentials)
    if keys and keys != wanted:
        raise AccountMismatch(f"{keys} keys (key id starting {credentials.key_prefix!r}) "
                              f"cannot trade {wanted}; set the {wanted} keys in "
                              f"APCA_API_KEY_ID / APCA_API_SECRET_KEY")
    try:
        account = read_account()
    except BrokerRefused as refused:
        if refused.status in (401, 403):
            raise AccountMismatch(f"Alpaca's {wanted} endpoint ({endpoint}) refused these keys "
                                  f"(HTTP {refused.status}: {refused.message}); are they keys "
                                  f"of the other environment?") from None
        raise
    detected = detected_type(account, wanted)
    if account.status != "ACTIVE" or account.account_blocked or account.trading_blocked:
        raise AccountMismatch(f"the {detected} account {account.account_number} cannot trade: "
                              f"status {account.status}, trading_blocked="
                              f"{account.trading_blocked}, account_blocked="
                              f"{account.account_blocked}")
    return ConfirmedAccount(detected, account, endpoint)
