"""FastAPI backend serving SPEC's Action Queue HTTP contract over :mod:`actionq`.

Build the app with :func:`create_app`; run it with ``python -m actionq_api``.
"""

from actionq_api.app import API_KEY_ENV, create_app

__all__ = ["API_KEY_ENV", "create_app"]
