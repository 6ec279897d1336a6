"""Errors of putting a version's files on a store, shared by staging and publish.

They are named for publish, their first user, and keep those names: the pipeline records a failure by its
class name (components/pipeline/envelope.py) and ``components.publish.errors`` makes them the base and
members of the publish stage's family. Staging turns them into its own (``StagingError``).
"""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class PublishError(ExportflowError):
    """A version could not be published; serving hosts never see it partially."""


class ExportIncomplete(PublishError):
    """The export folder lacks a file its SavedModel or manifest needs, or a file changed since."""


class ChecksumMismatch(PublishError):
    """A copied file does not match the export's manifest."""


class PublishInProgress(RetryableError, PublishError):
    """Another run holds the version's lock (publishing or removing it); retry later."""
