"""Errors of the ledger."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class LedgerError(ExportflowError):
    """The ledger could not be read or written."""


class LedgerConflict(RetryableError, LedgerError):
    """Concurrent updates kept winning over ours; the run may retry."""
