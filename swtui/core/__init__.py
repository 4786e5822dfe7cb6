"""Headless engine: loading, architecture adapters, probing, detection, edits, metrics.

Nothing in this package imports Textual (tests/test_import_hygiene.py enforces it).
"""
