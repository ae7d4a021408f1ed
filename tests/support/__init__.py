"""Helpers the tests import (always absolutely, ``from tests.support.X import ...``).

Fixtures live in each folder's conftest.py; everything a test imports by name lives here.
"""
