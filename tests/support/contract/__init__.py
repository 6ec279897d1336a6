"""User code for the stage-contract test: export strategies that print JSON-looking lines to stdout, and
modules that fail at import the way user code can (each module is a ``kind: custom`` target)."""
