"""Shared fixtures: the ``ccguard_issuer`` fixture of flask_ccguard.testing.plugin.

Imported rather than listed in ``pytest_plugins`` so that it works both from a
checkout (``PYTHONPATH=. pytest``) and with the package installed, where the
``ccguard`` pytest11 entry point already registers flask_ccguard.testing.plugin and a
second registration under another name would abort the run.
"""

from flask_ccguard.testing.plugin import ccguard_issuer  # noqa: F401
