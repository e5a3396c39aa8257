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

from livepitch import abort_restart, native_output, self_restart
from livepitch.errors import DeviceError
from livepitch.self_restart import SessionClock
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
def test_the_command_inherits_what_the_aborted_quiet_call_printed() -> None:
    """PortAudio's assert line goes to the memory file a quiet call prints into; the command
    inherits that file (and no other descriptor) and reads its last lines."""
    done = run_script(
        """
        from livepitch.native_output import capture_descriptor, quiet_native_stderr
        with quiet_native_stderr():
            os.write(2, b"an earlier call's noise\\n")  # (emptied by the next quiet call)
        descriptor = capture_descriptor()
        abort_restart.keep_across_exec(descriptor)
        reader = (
            "import os; from livepitch.native_output import inherited_last_words;"
            " print(sorted(os.listdir('/proc/self/fd')), inherited_last_words(os.environ['WORDS']))"
        )
        abort_restart.set_command([sys.executable, "-c", reader], {"WORDS": str(descriptor)})
        with quiet_native_stderr(), abort_restart.restarting_on_abort():
            os.write(2, b"Cannot connect to server socket\\n\\n")
            os.write(2, b"python: src/hostapi/jack/pa_jack.c:1530: Assertion `!err' failed.\\n")
            os.abort()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # nothing printed on the real stderr (quiet as asked)
    fds, words = done.stdout.split("] ", 1)
    assert len(ast.literal_eval(fds + "]")) == 5  # 0, 1, 2, the memory file, listdir's own
    assert words.strip() == (
        "Cannot connect to server socket | python: src/hostapi/jack/pa_jack.c:1530: Assertion `!err' failed."
    )


def test_only_our_memory_file_is_read_as_the_last_words() -> None:
    """A descriptor of another kind (inherited from elsewhere) is neither read nor closed."""
    from livepitch.native_output import inherited_last_words

    with open(os.devnull) as other:
        assert inherited_last_words(str(other.fileno())) is None
        os.fstat(other.fileno())  # still open
    assert inherited_last_words("") is None and inherited_last_words("999") is None
    memory = os.memfd_create("some-other-program")
    try:
        os.write(memory, b"words\n")
        assert inherited_last_words(str(memory)) is None
    finally:
        os.close(memory)


@needs_handler
def test_a_fault_during_an_armed_call_executes_the_command_as_an_abort_does() -> None:
    """PortAudio calling into a JACK client libjack has freed (its server died, another client
    opened) faults: during a PortAudio call that restarts livepitch too."""
    done = run_script(
        """
        import ctypes
        abort_restart.set_command([sys.executable, "-c", REPORT], {"MARK": "after a fault"})
        with abort_restart.restarting_on_abort():
            ctypes.string_at(0)
        print("not reached")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"executed {held_mask()} after a fault"), done.stdout


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
            audio_device,
            "_initialize_portaudio",
            lambda: seen.append(("initialize", abort_restart.armed())),
        )
        audio_device.reinitialise_portaudio()
        seen.append(("after", abort_restart.armed()))
    finally:
        abort_restart.clear_command()
    assert seen == [("helper", True), ("terminate", True), ("initialize", True), ("after", False)]


def test_portaudios_reset_prints_into_the_memory_file_not_dev_null(monkeypatch: pytest.MonkeyPatch) -> None:
    """sounddevice's own initialisation points stderr at /dev/null, so the assert of a reset
    that aborted was lost to the restarted livepitch; the reset initialises PortAudio itself,
    inside the quiet call. What it printed is gone once the call ends (an abort in a later,
    unquiet call must not take it for its own)."""
    try:
        import sounddevice

        from livepitch import audio_device, native_output
    except OSError as err:  # no PortAudio library here
        pytest.skip(f"sounddevice cannot load PortAudio: {err}")
    where: list[str] = []

    class FakeLib:
        def Pa_Initialize(self) -> int:
            os.write(2, b"pa_jack.c:820: Terminate: Assertion `err == 0' failed.\n")
            where.append(os.readlink("/proc/self/fd/2"))
            return 0

    monkeypatch.setattr(sounddevice, "_terminate", lambda: None)
    monkeypatch.setattr(sounddevice, "_lib", FakeLib())
    monkeypatch.setattr(sounddevice, "_initialized", 1)
    audio_device.reinitialise_portaudio()
    assert sounddevice._initialized == 2
    capture = native_output.capture_descriptor()
    if capture is None:
        assert where == ["/dev/null"]
    else:
        assert len(where) == 1 and where[0].startswith(f"/memfd:{native_output.CAPTURE_NAME}"), where
        assert os.fstat(capture).st_size == 0


def test_the_command_is_livepitch_resumed_with_the_sessions_clock_or_started_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resumed (waiting for its devices, on the session's clock) once this process was resumed
    or its audio flowed; else started afresh, as it was (a wrong ``--input`` still fails). The
    aborts in a row are counted, and the command cleared past the cap or once stopping."""
    commands: list[tuple[list[str], dict[str, str]]] = []
    cleared: list[int] = []
    monkeypatch.setattr(
        abort_restart, "set_command", lambda argv, env: commands.append((list(argv), dict(env)))
    )
    monkeypatch.setattr(abort_restart, "clear_command", lambda: cleared.append(1))
    kept: list[int | None] = []
    monkeypatch.setattr(abort_restart, "keep_across_exec", kept.append)
    monkeypatch.setattr(sys, "argv", ["livepitch", "--port", "Out"])
    monkeypatch.setenv(self_restart.ABORTS_VARIABLE, "7")  # an earlier process's, never handed on as it was
    monkeypatch.setenv(self_restart.LAST_WORDS_VARIABLE, "9")
    monkeypatch.setenv(self_restart.RESUME_VARIABLE, "5")
    clock = SessionClock(22050 * 90, 1234.5, 0.25)

    self_restart.ready_abort_restart(2, 0, clock, flowed=False)
    self_restart.ready_abort_restart(0, 0, clock, flowed=True)
    self_restart.ready_abort_restart(0, self_restart.MAX_ABORTS_IN_A_ROW - 1, clock, flowed=False)
    self_restart.ready_abort_restart(2, self_restart.MAX_ABORTS_IN_A_ROW, clock, flowed=False)
    self_restart.ready_abort_restart(2, 0, None, flowed=True)

    assert len(commands) == 3 and cleared == [1, 1]
    (argv, resumed), (_, flowed), (_, fresh) = commands
    assert argv == [sys.executable, "-m", "livepitch", "--port", "Out"]
    assert (resumed[self_restart.RESUME_VARIABLE], resumed[self_restart.CLOCK_VARIABLE]) == (
        "3",
        clock.to_text(),
    )
    assert (flowed[self_restart.RESUME_VARIABLE], flowed[self_restart.CLOCK_VARIABLE]) == (
        "1",
        clock.to_text(),
    )
    assert self_restart.RESUME_VARIABLE not in fresh and self_restart.CLOCK_VARIABLE not in fresh
    assert [env[self_restart.ABORTS_VARIABLE] for env in (resumed, flowed, fresh)] == [
        "1",
        "1",
        str(self_restart.MAX_ABORTS_IN_A_ROW),
    ]
    assert resumed["PATH"] == os.environ["PATH"]
    # the memory file a quiet PortAudio call prints into is handed on, for the assert's line
    memory = native_output.capture_descriptor()
    if memory is not None:
        assert [env[self_restart.LAST_WORDS_VARIABLE] for env in (resumed, flowed, fresh)] == [
            str(memory)
        ] * 3
        assert kept == [memory] * 3


def test_a_restart_to_reconnect_carries_the_aborts_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """abort, a wedged open, restart, abort again ...: the count goes on, so the cap holds."""
    environments: list[dict[str, str]] = []

    def execve(_path: str, _argv: list[str], env: dict[str, str]) -> None:
        environments.append(dict(env))
        raise OSError("exec refused")

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(self_restart, "_inherit_no_descriptors", lambda: None)
    for aborts in (0, 4):
        with pytest.raises(DeviceError):
            self_restart.restart_self(2, SessionClock(0, 0.0, 0.0), aborts=aborts)
    assert [env.get(self_restart.ABORTS_VARIABLE) for env in environments] == [None, "4"]


@needs_handler
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_an_abort_after_a_stop_signal_ends_the_process_even_before_pythons_handler_ran(signum: str) -> None:
    """The stop arrives while the main thread is inside the call (its Python handler has not
    run): the abort must end the process, not start a livepitch that the stop never reaches.
    A reload signal (SIGHUP) does not stop it."""
    done = run_script(
        f"""
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):
            signal.signal(getattr(signal, name), lambda *_: None)
        abort_restart.set_command([sys.executable, "-c", REPORT], {{"MARK": "again"}})
        abort_restart.watch_stop_signals([signal.SIGTERM, signal.SIGINT])
        with abort_restart.restarting_on_abort():
            signal.pthread_kill(threading.get_ident(), signal.{signum})  # (its C handler runs at once)
            os.abort()  # before the next bytecode, where its Python handler would run
        """
    )
    if signum == "SIGHUP":
        assert done.returncode == 0 and done.stdout.startswith("executed"), (done.stdout, done.stderr)
    else:
        assert done.returncode == -signal.SIGABRT, (done.stdout, done.stderr)


@needs_handler
def test_a_forked_child_never_executes_the_command() -> None:
    """The recording's background save forks the daemon: a child that aborts ends."""
    done = run_script(
        """
        abort_restart.set_command([sys.executable, "-c", REPORT], {"MARK": "child"})
        with abort_restart.restarting_on_abort():
            child = os.fork()
            if child == 0:
                os.abort()
            _, status = os.waitpid(child, 0)
        print("child", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT, flush=True)
        """
    )
    assert done.returncode == 0 and done.stdout.split() == ["child", "True"], (done.stdout, done.stderr)


def test_a_process_executed_after_an_abort_says_so_with_what_portaudio_printed() -> None:
    """Its first line names the abort and the failed assert (from the aborted process's memory
    file, handed on)."""
    from livepitch.native_output import CAPTURE_NAME

    memory = os.memfd_create(CAPTURE_NAME)
    os.write(memory, b"noise\nJackClient: Cannot open\npython: pa_jack.c:1530: Assertion `!err' failed.\n")
    env = dict(
        os.environ, **{self_restart.ABORTS_VARIABLE: "2", self_restart.LAST_WORDS_VARIABLE: str(memory)}
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "livepitch", "--input", "no such input anywhere", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
            pass_fds=(memory,),
        )
    finally:
        os.close(memory)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert "restarted: PortAudio aborted livepitch" in lines[0] and "(2 in a row)" in lines[0], lines
    assert lines[0].endswith(
        "; it printed: noise | JackClient: Cannot open | python: pa_jack.c:1530: Assertion `!err' failed."
    ), lines
    assert lines[1].startswith("livepitch: error:") and len(lines) == 2, lines  # (no input here)


@needs_handler
def test_an_abort_as_portaudio_ends_at_exit_ends_the_process_with_its_exit_code() -> None:
    """A first start that failed (exit 6) as the JACK server died: Pa_Terminate's assert used
    to end it by SIGABRT with a core dump instead, in sounddevice's exit handler."""
    done = run_script(
        """
        import types
        from livepitch import cli
        abort_restart.set_command([sys.executable, "-c", REPORT], {})  # (exiting wins)
        sys.modules["livepitch.audio_device"] = types.SimpleNamespace(terminate_portaudio=os.abort)
        print("ending", flush=True)
        cli._end_audio_system(6)
        print("not reached")
        """
    )
    assert done.returncode == 6 and done.stdout.split() == ["ending"], (done.stdout, done.stderr)


@needs_handler
@pytest.mark.parametrize("signum", ["SIGSEGV", "SIGBUS"])
def test_a_fault_as_portaudio_ends_at_exit_ends_the_process_with_its_exit_code(signum: str) -> None:
    """libjack frees PortAudio's client once its server died and another client opens (a
    failed MIDI port): Pa_Terminate then faulted in jack_deactivate, and a process about to
    exit 7 died by SIGSEGV (race soak passes 6 and 7). Outside a PortAudio call a fault does
    what it did before, a command set or not."""
    done = run_script(
        f"""
        import ctypes, types
        from livepitch import cli
        def fault():
            print("ending", flush=True)
            signal.raise_signal(signal.{signum}) if "{signum}" == "SIGBUS" else ctypes.string_at(0)
        sys.modules["livepitch.audio_device"] = types.SimpleNamespace(terminate_portaudio=fault)
        cli._end_audio_system(7)
        print("not reached")
        """
    )
    assert done.returncode == 7 and done.stdout.split() == ["ending"], (done.stdout, done.stderr)
    outside = run_script(
        """
        import ctypes
        abort_restart.set_command([sys.executable, "-c", REPORT], {})
        with abort_restart.exiting_on_abort(7):
            pass
        ctypes.string_at(0)
        """
    )
    assert outside.returncode == -signal.SIGSEGV, (outside.stdout, outside.stderr)


def test_portaudio_ends_before_the_exit_handler_would_end_it() -> None:
    try:
        import sounddevice

        from livepitch import audio_device
    except OSError as err:  # no PortAudio library here
        pytest.skip(f"sounddevice cannot load PortAudio: {err}")
    assert sounddevice._initialized
    audio_device.terminate_portaudio()
    try:
        assert sounddevice._initialized == 0  # sounddevice's exit handler has nothing left to do
    finally:
        sounddevice._initialize()
