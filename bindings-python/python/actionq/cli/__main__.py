"""``python -m actionq.cli``: the ``actionq`` command line."""

from actionq.cli.main import main

if __name__ == "__main__":
    main()
