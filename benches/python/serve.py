"""Serves one of the two backends compared by bench_http.py on 127.0.0.1.

    python serve.py --impl actionq|status_quo --db PATH --port N --key KEY
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["actionq", "status_quo"], required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    if args.impl == "actionq":
        from actionq.server import create_app
    else:
        from status_quo import create_app
    app = create_app(None if args.db == ":memory:" else args.db, args.key)
    # Both sides as deployed: uvicorn[standard]'s uvloop and httptools (named, so a
    # missing piece fails instead of silently falling back to asyncio/h11).
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
