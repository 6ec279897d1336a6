"""Export: turn a blessed checkpoint into SavedModels through pluggable export strategies."""
