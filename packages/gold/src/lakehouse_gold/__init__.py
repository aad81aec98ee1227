"""lakehouse-gold."""
