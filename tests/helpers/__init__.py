"""Shared test code that is not a pytest fixture: running cdigen, building specs, bundles,
network namespaces and runc containers. Fixtures live in tests/conftest.py."""
