"""Keys come from the environment only, a missing one is named, and none is ever shown."""
from __future__ import annotations

import pickle

import pytest
import responses
import structlog

from connectors.alpaca.client import AlpacaTrading
from connectors.alpaca.credentials import (
    KEY_ID_VAR, SECRET_KEY_VAR, MissingCredentialError, load_credentials,
)
from connectors.alpaca.errors import BrokerRefused
from connectors.alpaca.ratelimit import TokenBucket
from firetape.logs import configure_logging
from tests.fixtures.alpaca.recorded import KEY_ID, PAPER, SECRET, credentials, environ, text


@pytest.fixture(autouse=True)
def _restore_structlog():
    """configure_logging binds the (captured) stderr of the moment; later tests must not
    inherit a closed capture stream, so structlog's global config is put back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.parametrize("missing", [KEY_ID_VAR, SECRET_KEY_VAR])
def test_load_credentials_when_variable_missing_then_error_names_it(missing):
    env = environ()
    del env[missing]
    with pytest.raises(MissingCredentialError, match=missing):
        load_credentials(env)


def test_load_credentials_when_variable_blank_then_error_names_it():
    with pytest.raises(MissingCredentialError, match=SECRET_KEY_VAR):
        load_credentials({**environ(), SECRET_KEY_VAR: "  "})


def test_credentials_when_printed_or_formatted_then_masked():
    creds = load_credentials(environ())
    shown = f"{creds} {creds!r} {creds.secret_key} {[creds]}"
    assert SECRET not in shown and KEY_ID not in shown
    assert creds.secret_key.reveal() == SECRET and creds.key_prefix == "PK"


def test_secret_when_pickled_then_refused():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(load_credentials(environ()))


def test_logging_when_credentials_and_secret_fields_logged_then_redacted(capsys):
    configure_logging("debug", "json")
    creds = load_credentials(environ())
    log = structlog.get_logger("alpaca")
    log.info("connecting", credentials=creds, secret_key=SECRET, api_key=KEY_ID,
             key_id=KEY_ID, APCA_API_SECRET_KEY=SECRET)
    err = capsys.readouterr().err
    assert "connecting" in err
    assert SECRET not in err and KEY_ID not in err


@responses.activate
def test_client_when_request_refused_then_error_and_repr_hold_no_key(capsys):
    responses.get(f"{PAPER}/account", body=text("error_unauthorized"), status=401)
    trading = AlpacaTrading(credentials(), bucket=TokenBucket(sleep=lambda s: None))
    with pytest.raises(BrokerRefused) as refused:
        trading.account()
    configure_logging("debug", "json")
    structlog.get_logger().error("account read failed", error=str(refused.value),
                                 client=repr(trading))
    shown = str(refused.value) + repr(trading) + capsys.readouterr().err
    assert "request is not authorized" in shown
    assert SECRET not in shown and KEY_ID not in shown
    # The keys did go where they belong: Alpaca's auth headers.
    assert responses.calls[0].request.headers["APCA-API-SECRET-KEY"] == SECRET
