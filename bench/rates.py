"""Timing helper shared by the benchmarks: the best of several batches, as operations per second."""

import time


def best_rate(fn, n: int, rounds: int) -> float:
    """Operations per second of the fastest of ``rounds`` batches of ``n`` calls (``fn(n)`` runs a batch)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n / best
