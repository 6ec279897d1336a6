"""Root of exportflow's exception family.

Each stage defines its own subclass (``DiscoveryError``, ``ExportError``, ...) in its ``errors`` module so
callers can catch one stage's failures without string matching. ``retryable`` tells the orchestrator
whether running the same step again may succeed (a vanished checkpoint, a transient storage error) or
whether a human has to fix something first (a bad config, a corrupt checkpoint).
"""

from __future__ import annotations


class ExportflowError(Exception):
    """Base of every error exportflow raises on purpose."""

    retryable: bool = False


class RetryableError(ExportflowError):
    """Marks a condition that a later attempt may not hit (mixed into stage errors)."""

    retryable = True
