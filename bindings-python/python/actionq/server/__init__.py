"""The FastAPI backend serving the Action Queue HTTP contract over :mod:`actionq`
(docs/contract/http.md).

Needs the ``server`` extra (``pip install 'actionq[server]'``: FastAPI and
``uvicorn[standard]``). Build the app with :func:`create_app`; run it with the
``actionq-server`` command (or ``python -m actionq.server``). The routes are
one module-level ``APIRouter``, :data:`router`, whose dependencies
(:func:`get_queue`, and :func:`person` / :func:`agent_or_person`, which
authenticate the caller) read the app's state.
"""

import sys

if sys.version_info < (3, 10):  # pragma: no cover - the routes use `X | None` at run time
    raise ImportError("actionq.server needs Python 3.10 or newer")

from actionq.server.app import API_KEY_ENV, create_app, load_whitelist, queue_error_handler
from actionq.server.routes import Caller, ServerState, agent_or_person, get_queue, person, require_api_key, router

__all__ = [
    "API_KEY_ENV",
    "Caller",
    "ServerState",
    "agent_or_person",
    "create_app",
    "get_queue",
    "load_whitelist",
    "person",
    "queue_error_handler",
    "require_api_key",
    "router",
]
