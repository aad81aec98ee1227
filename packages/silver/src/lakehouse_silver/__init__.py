"""lakehouse-silver."""
