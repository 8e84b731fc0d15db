"""Alpaca API keys, read from the environment only (DESIGN rule 7).

The variable names are Alpaca's own (the ones its SDKs and CLI read), so keys already set
up for other tools work. The secret is held in a `Secret` whose repr and str are masked,
so printing or logging the credentials object, or an exception that carries it, shows
"***" and never the key.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

KEY_ID_VAR = "APCA_API_KEY_ID"
SECRET_KEY_VAR = "APCA_API_SECRET_KEY"
MASK = "***"


class MissingCredentialError(RuntimeError):
    """A key variable is unset or empty; the message names the variable, never a value."""


class Secret:
    """A string that does not show itself. `reveal()` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        # Pickling would be a way to move the secret into a file or another process.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class AlpacaCredentials:
    """The key id and secret. Both are masked in repr: the key id is not secret by itself,
    but it identifies the account and pairs with the secret, so it is not shown either."""

    key_id: Secret
    secret_key: Secret

    @property
    def key_prefix(self) -> str:
        """The first two characters of the key id: "PK" for paper keys, "AK" for live.

        Safe to show: two characters identify nothing, and they are what an operator needs
        to see to understand a paper/live mismatch.
        """
        return self.key_id.reveal()[:2]


def load_credentials(environ: Mapping[str, str] | None = None) -> AlpacaCredentials:
    """Read the keys from `environ` (default: os.environ).

    Raises MissingCredentialError naming the first missing variable.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for name in (KEY_ID_VAR, SECRET_KEY_VAR):
        value = environ.get(name, "").strip()
        if not value:
            raise MissingCredentialError(
                f"Alpaca credentials: environment variable {name} is not set; export it "
                f"(paper keys from https://app.alpaca.markets/paper/dashboard/overview)")
        values[name] = Secret(value)
    return AlpacaCredentials(values[KEY_ID_VAR], values[SECRET_KEY_VAR])
