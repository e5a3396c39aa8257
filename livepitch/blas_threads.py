"""numpy's BLAS held to one thread while the incremental engine computes.

The engine's matrix products are small, and OpenBLAS splits the larger of them across its
threads, which spin while they wait for each other: on a busy machine a thread descheduled in
the middle of a product stalls the others for a time slice. Fed through ``livepitch.api`` with numpy's default two threads,
the engine took 2.3 s of CPU per audio second instead of 0.15 and ran 2.4 times slower than
real time (``benchmarks/bench_embedding.py``). The ``livepitch`` command sets ``OPENBLAS_NUM_THREADS=1`` before
numpy loads; a program that embeds the engine may have loaded numpy with more threads, so the
engine holds BLAS to one thread around its own calls (threadpoolctl), for those calls only.
OpenBLAS's thread count is the process's: another thread's product that runs meanwhile runs on
one thread too.
"""

from __future__ import annotations

import contextlib
from typing import Any

_limiter: Any = None
"""The BLAS libraries to limit (a threadpoolctl controller), False if none runs more than one
thread; None until first asked."""


def _blas_to_limit() -> Any:
    global _limiter
    if _limiter is None:
        from threadpoolctl import ThreadpoolController

        blas = ThreadpoolController().select(user_api="blas")
        _limiter = blas if any(info["num_threads"] > 1 for info in blas.info()) else False
    return _limiter


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """A context in which numpy's BLAS runs on one thread (nothing to do, and no cost, if it
    already does: the ``livepitch`` command's case)."""
    blas = _blas_to_limit()
    return blas.limit(limits=1) if blas else contextlib.nullcontext()
