"""Errors of the controller side (all are PasError: the CLI prints them and exits 1)."""

from __future__ import annotations

from pas_models.errors import PasError


class ConfigError(PasError, ValueError):
    """A search definition or cluster profile is wrong: names the file, the key and the valid choices."""


class LedgerError(PasError):
    """The ledger cannot be opened or used (locked by another controller, newer schema, ...)."""


class LedgerConflict(LedgerError):
    """An action expected a row in a state it is no longer in (another writer got there first): refused."""


class SubmissionError(PasError):
    """A scheduler command failed; carries the command and its stderr. ``permanent``: the request itself
    is wrong (bad account, partition, QOS...), retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
