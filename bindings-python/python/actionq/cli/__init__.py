"""``actionq``, the command line for people (docs/contract/cli-and-mcp.md#command-line).

    actionq [--url URL] [--key-file FILE] [--json] COMMAND

Talks to ``actionq-server`` over its HTTP API with the key from
``--key-file`` or ``ACTIONQ_KEY``. Needs the ``cli`` extra
(``pip install 'actionq[cli]'``: click and httpx).
"""

from actionq.cli.main import cli, main

__all__ = ["cli", "main"]
