"""``python -m actionq.server``: the same as the ``actionq-server`` command."""

from actionq.server.cli import main

main()
