"""lakehouse-bronze."""
