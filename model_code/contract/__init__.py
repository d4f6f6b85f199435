"""The data contract: the schema, validation with quarantine, and seeded synthetic data."""
