"""Persistence: the schema, the time-series store, push groups, tokens, rollups, migrations."""
