"""Thin adapters that run :func:`gradcheck_cli.watch` inside other training frameworks."""
