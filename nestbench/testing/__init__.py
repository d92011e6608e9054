"""Helpers shipped with the library for tests and parity checks (like lhotse's ``testing`` package)."""
