"""Per-call cost of the Python binding: `get_action` from Python vs from Rust.

    python bindings-python/bench/bench_get_action.py [--iterations 200000]

Both loops run in this one process on the same queue and the same row: the Rust
loop calls `actionq::ActionQueue::get_action` directly (through the private
helper `actionq._actionq._bench_get_action`), the Python loops call the binding. The
difference is what the binding adds per call: argument conversion, the GIL
release around SQLite calls, building the `Action` object, and (last column)
reading every attribute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import actionq
from actionq._actionq import _bench_get_action


def best_ns_per_call(run: Callable[[int], None], iterations: int, repeats: int) -> float:
    """Best mean nanoseconds per call over `repeats` runs of `iterations` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run(iterations)
        samples.append((time.perf_counter_ns() - start) / iterations)
    return min(samples)


def measure(queue: actionq.ActionQueue, iterations: int, repeats: int) -> dict[str, float]:
    queue.create_server("bench-1")
    for _ in range(999):
        queue.create_action("bench-1", "clear_logs")
    target = queue.create_action("bench-1", "restart_service", "nginx").id
    get = queue.get_action

    def python_loop(n: int) -> None:
        for _ in range(n):
            get(target)

    def python_map(n: int) -> None:
        for _ in map(get, [target] * n):
            pass

    def python_to_dict(n: int) -> None:
        for _ in range(n):
            get(target).to_dict()

    python_loop(1000)  # warm up caches and the store
    rust = min(_bench_get_action(queue, target, iterations) for _ in range(repeats))
    return {
        "rust": rust,
        "python": best_ns_per_call(python_loop, iterations, repeats),
        "python_map": best_ns_per_call(python_map, iterations, repeats),
        "python_to_dict": best_ns_per_call(python_to_dict, iterations, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "memory": actionq.ActionQueue(),
            "sqlite": actionq.ActionQueue(Path(tmp) / "bench.sqlite3"),
        }
        print(f"get_action, best of {args.repeats} x {args.iterations} calls, ns per call")
        print(f"{'store':<8} {'Rust':>9} {'Python':>9} {'overhead':>9} {'Py map()':>9} {'Py+to_dict':>11}")
        for name, queue in stores.items():
            r = measure(queue, args.iterations, args.repeats)
            overhead = r["python"] - r["rust"]
            print(
                f"{name:<8} {r['rust']:>9.0f} {r['python']:>9.0f} {overhead:>9.0f} "
                f"{r['python_map']:>9.0f} {r['python_to_dict']:>11.0f}"
            )


if __name__ == "__main__":
    main()
