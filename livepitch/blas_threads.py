"""numpy's BLAS held to one thread while the incremental engine computes.

The engine's matrix products are small, and OpenBLAS splits the larger of them across its
threads, which spin while they wait for each other: on a busy machine a thread descheduled in
the middle of a product stalls the others for a time slice. Fed through ``livepitch.api`` with
numpy's default two threads, the engine took 2.3 s of CPU per audio second instead of 0.15 and
ran 2.4 times slower than real time (``benchmarks/bench_embedding.py``). The ``livepitch``
command sets ``OPENBLAS_NUM_THREADS=1`` before numpy loads; a program that embeds the engine
may have loaded numpy with more threads, so the engine holds BLAS to one thread around its own
calls (threadpoolctl). OpenBLAS's thread count is the process's: the first engine call to
enter sets it to one and the last to leave puts back what it found, so engines on several
threads never leave it at one, and another thread's product that runs meanwhile runs on one
thread too. The BLAS libraries are the ones loaded at the first call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_blas: Any = None
"""The BLAS libraries (a threadpoolctl controller), found at the first call."""
_inside = 0
"""Engine calls inside ``one_blas_thread`` now, on every thread."""
_limits: Any = None
"""The limit the first of them set (threadpoolctl's, which restores the count it found), if any."""


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """A context in which numpy's BLAS runs on one thread (nothing is changed where it already
    does: the ``livepitch`` command's case)."""
    global _blas, _inside, _limits
    with _lock:
        if _inside == 0:
            if _blas is None:
                from threadpoolctl import ThreadpoolController

                _blas = ThreadpoolController().select(user_api="blas")
            if any(library.get_num_threads() > 1 for library in _blas.lib_controllers):
                _limits = _blas.limit(limits=1)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _limits is not None:
                limits, _limits = _limits, None
                limits.restore_original_limits()
