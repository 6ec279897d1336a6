"""Putting a version's files on a store, verified: what staging and publish both stand on.

* ``pool.py`` — bounded parallel transfers, each verified against its manifest entry (copy, link or upload);
* ``dedupe.py`` — objects already on the store that hold a file's exact bytes (server-side copies);
* ``lock.py`` — the version lock: one run at a time stages, publishes or removes a version;
* ``progress.py`` — bytes, objects, rate and ETA of a run of transfers;
* ``errors.py`` — their errors, which are the publish family's (``components.publish.errors``).

Below staging and publish (tests/test_layers.py): nothing here knows where a version goes or why.
"""
