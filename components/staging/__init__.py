"""Staging: how export, warmup and publish of one version hand it over through storage, by URI.

Layout under the model's staging root (``components.paths.staging_root``; any storage scheme; the names
and the path functions are components/layout.py's)::

    <strategy>/<version>/...                   the staged export (a SavedModel, or a set kept together)
    <strategy>/.exportflow/<version>.staged.json    object stores only: the version is complete; lists every
                                                    file with size and CRC32C, and the export's signatures
    <strategy>/.exportflow/<version>.lease.json     object stores only: who is staging or removing it
    <strategy>/.tmp-<version>-<pid>@<host>/    local disk only: a version being written (renamed into place)

On local disk a version appears by rename, so a numbered folder is always complete. Object stores have no
rename: the writer holds a lock (``components.transfer.lock.VersionLock``), uploads, verifies every object
against its own listing and writes ``.staged.json`` last; a folder without it is not staged yet.

Each worker keeps a scratch cache of objects by CRC32C (``cache.ScratchCache``): a worker that exported
a version, or already fetched it, reads it from there instead of downloading it again.
"""
