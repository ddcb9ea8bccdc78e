"""Contracts between services: the canonical feedback, its score, alert lifecycle payloads."""
