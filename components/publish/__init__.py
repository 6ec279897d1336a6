"""Publication of verified exports to the destination (local disk or blob storage)."""
