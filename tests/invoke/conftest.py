"""Fixtures of the `fleece invoke` tests: the CLI in a subprocess."""

from tests.new.conftest import run_fleece

__all__ = ["run_fleece"]
