"""Stands in for decord when the suite runs the PyAV-only path (``make test-pyav``: PYTHONPATH puts this
folder first): ``import decord`` fails as it does where decord has no wheels (Power9)."""

raise ImportError("No module named 'decord' (hidden by tests/no_decord for the PyAV-only test run)")
