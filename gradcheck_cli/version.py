"""The package version, in one place (the package, the reports and `--version` read it)."""

__version__ = "0.1.0"
