"""Errors of the ledger."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class LedgerError(ExportflowError):
    """The ledger could not be read or written."""


class LedgerConflict(RetryableError, LedgerError):
    """Concurrent updates kept winning over ours; the run may retry."""


class LedgerUnavailable(RetryableError, LedgerError):
    """The store holding the ledger failed transiently (network, 5xx); the run may retry."""
