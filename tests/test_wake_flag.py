"""WakeFlag: threading.Event's flag, safe to set from a signal handler on the waiting thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from livepitch.wake_flag import WakeFlag

PESTERED = textwrap.dedent(
    """
    import signal, sys, threading, time
    from livepitch.wake_flag import WakeFlag

    flag = WakeFlag()
    signal.signal(signal.SIGUSR1, lambda *_: flag.set())  # as the daemon's SIGTERM and SIGHUP do
    main, done = threading.get_ident(), False

    def pester():
        while not done:
            signal.pthread_kill(main, signal.SIGUSR1)
            time.sleep(0.00005)

    threading.Thread(target=pester, daemon=True).start()
    end, rounds = time.monotonic() + 2.0, 0
    while time.monotonic() < end:
        flag.wait(0)
        flag.clear()
        rounds += 1
    done = True
    print("survived", rounds)
    """
)


def test_a_signal_handler_that_sets_it_while_this_thread_waits_on_it_never_deadlocks() -> None:
    """With threading.Event this deadlocks within a second or two (the handler runs while the
    wait holds the Event's lock, and waits for that lock): a SIGTERM once never ended
    livepitch that way."""
    done = subprocess.run(
        [sys.executable, "-c", PESTERED], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("survived"), (done.stdout, done.stderr[-2000:])
    assert int(done.stdout.split()[1]) > 1000


def test_it_behaves_as_an_event() -> None:
    flag = WakeFlag()
    assert not flag.is_set() and flag.wait(0.01) is False
    started = time.monotonic()
    threading.Timer(0.1, flag.set).start()  # another thread wakes the wait at once
    assert flag.wait(5.0) is True and time.monotonic() - started < 2.0
    assert flag.is_set() and flag.wait(5.0) is True  # set: no wait
    flag.clear()
    started = time.monotonic()
    assert flag.wait(0.2) is False and time.monotonic() - started >= 0.19  # no stale wake-up
    flag.set()
    flag.set()  # (twice: one wake-up is enough)
    flag.close()
    flag.set()  # after close: the flag still tells, nothing waits
    assert flag.is_set() and flag.wait(1.0) is True
