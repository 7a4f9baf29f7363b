"""fleece: write, ship and keep up to date Python services on AWS Lambda."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fleece")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
