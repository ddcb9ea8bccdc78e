"""Async SQLAlchemy plumbing: engine, naming convention, migrations."""
