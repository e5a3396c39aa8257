"""An abort during a PortAudio call executes livepitch again (livepitch/_abort_restart.c); any
other SIGABRT ends the process as before."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from livepitch import abort_restart, cli
from livepitch.daemon import SessionClock
from tests.test_native_capture import can_compile

needs_handler = pytest.mark.skipif(not abort_restart.available(), reason="livepitch._abort_restart not built")

# What the executed command prints: its blocked signals (hex, /proc/self/status) and $MARK.
REPORT = (
    "import os, re; blocked = re.search(r'SigBlk:\\s*(\\S+)', open('/proc/self/status').read()).group(1);"
    " print('executed', int(blocked, 16), os.environ.get('MARK'), sorted(os.environ))"
)


def run_script(body: str, timeout_s: float = 20.0) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        from livepitch import abort_restart
        REPORT = {REPORT!r}
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def held_mask() -> int:
    return (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGHUP - 1))


def test_the_handler_is_built_wherever_it_can_be() -> None:
    if not can_compile():
        pytest.skip("no C compiler or Python headers here: an abort ends livepitch")
    assert abort_restart.available()


@needs_handler
def test_an_abort_during_an_armed_call_executes_the_command_with_only_the_held_signals_blocked() -> None:
    done = run_script(
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {"MARK": "again"})
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGUSR1])  # as abort() may
        with abort_restart.restarting_on_abort():
            os.abort()
        print("not reached")
        """
    )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split(maxsplit=3)
    assert words[:3] == ["executed", str(held_mask()), "again"], done.stdout
    assert "'PATH'" not in words[3]  # the environment given, not this one's (Python may add LC_CTYPE)


@needs_handler
def test_the_command_gets_the_stderr_a_quiet_portaudio_call_had_swapped_out_and_no_other_descriptor() -> None:
    done = run_script(
        """
        from livepitch.native_output import quiet_native_stderr
        kept = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(kept, True)  # as libjack's sockets are
        abort_restart.set_command(
            [sys.executable, "-c", "import os, sys; print('stderr here', os.listdir('/proc/self/fd'), file=sys.stderr)"],
            {},
        )
        with quiet_native_stderr(), abort_restart.restarting_on_abort():
            os.abort()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("stderr here"), done.stderr
    fds = ast.literal_eval(done.stderr.split(maxsplit=2)[2])
    assert sorted(fds) == ["0", "1", "2", "3"]  # 3: listdir's own


@needs_handler
def test_an_abort_on_a_helper_thread_during_its_call_executes_the_command() -> None:
    done = run_script(
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {"MARK": "thread"})

        def call():
            with abort_restart.restarting_on_abort():
                os.abort()

        threading.Thread(target=call).start()
        time.sleep(10)
        print("not reached")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == ["executed", str(held_mask()), "thread"]


@needs_handler
def test_a_sigabrt_from_outside_during_a_call_executes_the_command() -> None:
    done = run_script(
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {"MARK": "sent"})
        with abort_restart.restarting_on_abort():
            os.kill(os.getpid(), signal.SIGABRT)
            time.sleep(10)
        print("not reached")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == ["executed", str(held_mask()), "sent"]


@needs_handler
@pytest.mark.parametrize(
    "body",
    [
        # between calls (armed and disarmed again)
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {})
        with abort_restart.restarting_on_abort():
            pass
        print("armed", abort_restart.armed(), flush=True)
        os.abort()
        """,
        # during a call, but with the command cleared
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {})
        abort_restart.clear_command()
        with abort_restart.restarting_on_abort():
            print("armed", abort_restart.armed(), flush=True)
            os.abort()
        """,
        # a signal from outside between calls
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {})
        print("armed", abort_restart.armed(), flush=True)
        os.kill(os.getpid(), signal.SIGABRT)
        time.sleep(10)
        """,
        # the command cannot be executed
        """
        abort_restart.set_command(["/nonexistent/python"], {})
        with abort_restart.restarting_on_abort():
            print("armed", abort_restart.armed(), flush=True)
            os.abort()
        """,
    ],
    ids=["between-calls", "no-command", "signal-between-calls", "command-missing"],
)
def test_any_other_abort_ends_the_process_by_the_signal(body: str) -> None:
    done = run_script(body)
    assert done.returncode == -signal.SIGABRT, (done.stdout, done.stderr)
    assert "executed" not in done.stdout
    assert done.stdout.startswith("armed"), done.stdout
    assert ("True" in done.stdout) == ("nonexistent" in body)


@needs_handler
def test_portaudio_calls_run_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening, starting, stopping and closing a stream (the helper thread's work) and resetting
    PortAudio are the calls whose asserts a dying JACK server fails."""
    try:
        import sounddevice

        from livepitch import audio_device
    except OSError as err:  # no PortAudio library here
        pytest.skip(f"sounddevice cannot load PortAudio: {err}")
    seen: list[tuple[str, bool]] = []
    abort_restart.set_command([sys.executable, "-c", "pass"], {})
    try:
        source: Any = object.__new__(audio_device.DeviceSource)
        source.wedged = False
        assert source._finished_within(lambda: seen.append(("helper", abort_restart.armed())), "t", 5.0, None)
        monkeypatch.setattr(
            sounddevice, "_terminate", lambda: seen.append(("terminate", abort_restart.armed()))
        )
        monkeypatch.setattr(
            sounddevice,
            "_initialize",
            lambda: seen.append(("initialize", abort_restart.armed())),
        )
        audio_device.reinitialise_portaudio()
        seen.append(("after", abort_restart.armed()))
    finally:
        abort_restart.clear_command()
    assert seen == [("helper", True), ("terminate", True), ("initialize", True), ("after", False)]


def test_the_command_is_livepitch_resumed_with_the_sessions_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[tuple[list[str], dict[str, str]]] = []
    cleared: list[int] = []
    monkeypatch.setattr(
        abort_restart, "set_command", lambda argv, env: commands.append((list(argv), dict(env)))
    )
    monkeypatch.setattr(abort_restart, "clear_command", lambda: cleared.append(1))
    monkeypatch.setattr(sys, "argv", ["livepitch", "--port", "Out"])
    monkeypatch.setenv(cli.ABORTS_VARIABLE, "7")  # an earlier process's, never handed on as it was
    clock = SessionClock(22050 * 90, 1234.5, 0.25)

    cli._ready_abort_restart(3, 0, clock)
    cli._ready_abort_restart(3, cli.MAX_ABORTS_IN_A_ROW - 1, clock)
    cli._ready_abort_restart(3, cli.MAX_ABORTS_IN_A_ROW, clock)

    assert len(commands) == 2 and cleared == [1]
    (argv, env), (_, env_last) = commands
    assert argv == [sys.executable, "-m", "livepitch", "--port", "Out"]
    assert env[cli.RESUME_VARIABLE] == "3"
    assert env[cli.CLOCK_VARIABLE] == clock.to_text()
    assert env[cli.ABORTS_VARIABLE] == "1"
    assert env_last[cli.ABORTS_VARIABLE] == str(cli.MAX_ABORTS_IN_A_ROW)
    assert env["PATH"] == os.environ["PATH"]


def test_a_process_executed_after_an_abort_says_so() -> None:
    """Its first line names the abort (the failed assert's own line came before it)."""
    env = dict(os.environ, **{cli.ABORTS_VARIABLE: "2"})
    done = subprocess.run(
        [sys.executable, "-m", "livepitch", "--input", "no such input anywhere", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert "restarted: PortAudio aborted livepitch" in lines[0] and "(2 in a row)" in lines[0], lines
    assert lines[1].startswith("livepitch: error:") and len(lines) == 2, lines  # (no input here)
