"""The test suite. A package so that ``tests.zoo`` cannot be shadowed by another distribution's ``tests``."""
