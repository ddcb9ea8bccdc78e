"""One module per provider: pure functions from a provider's payload to canonical feedback.

Adapters never touch the network, the clock or the broker. Each exposes small
signature verifiers (constant-time compares) and a ``*_to_feedback`` function
that returns :class:`~closeloop_ingest.adapters.base.Normalised` or raises an
:class:`~closeloop_ingest.errors.IngestError`.
"""
