"""Serving control: the TF Serving model server config exportflow owns, version labels, promote/rollback/pin."""
