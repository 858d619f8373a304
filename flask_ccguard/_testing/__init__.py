"""Internals of :mod:`flask_ccguard.testing`; not a public API."""
