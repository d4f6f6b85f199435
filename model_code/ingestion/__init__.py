"""Ingestion: validated rows into the feature group (the ingestion pipeline's container steps)."""
