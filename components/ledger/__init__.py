"""Durable per-model state kept at the destination: what was seen, evaluated, exported and published."""

from components.ledger.ledger import Ledger, ledger_uri
from components.ledger.schema import CheckpointRecord, LedgerState

__all__ = ["CheckpointRecord", "Ledger", "LedgerState", "ledger_uri"]
