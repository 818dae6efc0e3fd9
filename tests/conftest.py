"""Shared pytest setup: keep this minimal. Component fixtures belong beside
their tests (e.g. tests/test_models/conftest.py), not here."""
import os

# Headless: matplotlib must not try to open a window.
os.environ.setdefault('MPLBACKEND', 'Agg')
