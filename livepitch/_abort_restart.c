/*
 * Replacing livepitch with a fresh livepitch when PortAudio aborts the process.
 *
 * PortAudio's JACK backend checks its state with assert(): when the JACK server dies while a
 * stream opens or closes, or while PortAudio initialises or terminates, an assert fails and
 * abort() raises SIGABRT (docs/benchmarks.md, "Race soak"). Python cannot answer that signal:
 * its handlers run later, on the main thread, and abort() ends the process once a handler
 * returns. This handler runs on the aborting thread and, while a PortAudio call is under way
 * (the arm count is positive) and a command is set, executes that command (livepitch again,
 * as a restart to reconnect does): execve is async-signal-safe. Otherwise, or if execve
 * fails, the signal's previous action is restored and the signal raised again, so SIGABRT
 * does what it did before (end the process, dump core).
 *
 * The new process starts with SIGTERM and SIGHUP blocked and every other signal unblocked
 * (abort() may have blocked them): livepitch.self_restart unblocks those two once it can note them.
 * It inherits no file descriptor but 0, 1 and 2: libjack's sockets, left open, kept this
 * process's JACK clients registered as zombies, and a live server then stopped answering the
 * new process's clients, but for one descriptor named by keep_across_exec: the memory file
 * that held what the aborted call printed (the failed assert's line), which the new process
 * reads and logs. Its stderr is this process's as the first command was set: PortAudio
 * calls run with descriptor 2 pointed at that memory file (livepitch.native_output), and an
 * abort then left the new process logging into it.
 *
 * As the process exits, PortAudio's own end (Pa_Terminate) runs armed with an exit code
 * instead (set_exit_code): an abort there ends the process with that code, not by SIGABRT
 * with a core dump.
 *
 * A segmentation fault or a bus error during a PortAudio call is handled as an abort: once
 * libjack has seen its server die, the next jack_client_open in the process (a failed MIDI
 * port) frees every client still open, PortAudio's among them, and PortAudio's next call on
 * it faults (Pa_Terminate at exit in jack_deactivate: race soak passes 6 and 7, reproduced
 * with libjack alone). Outside those calls a fault does what it did before. Once a stop signal (SIGTERM, SIGINT) has arrived, no command runs: the handler reads the
 * bytes Python's C signal handler writes to its wakeup pipe (signal.set_wakeup_fd) as each
 * signal arrives, since the Python handler may not have run yet (the main thread may be the
 * one inside PortAudio). A forked child forgets the command.
 *
 * Built as an optional extension (setup.py); without it an abort ends livepitch as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2) /* linux/close_range.h */
#endif

/* Bumped whenever the Python-facing functions change (livepitch/abort_restart.py checks it). */
#define ABI_VERSION 5

typedef struct {
    char *path;
    char **argv; /* NULL-terminated */
    char **envp; /* NULL-terminated */
} Command;

/* The command, owned by whoever takes it out by exchange: the handler that executes it, or
 * the next set_command/clear_command (GIL held), which frees it. */
static Command *current;
static int arm_count; /* PortAudio calls under way, on any thread */
static int installed;
static struct sigaction previous_action;
static int exit_code = -1;    /* >= 0: an armed abort ends the process with it (exiting) */
static int stop_fd = -1;      /* read end of Python's signal wakeup pipe (one byte per signal) */
static int stop_seen;         /* a stop signal's byte was read from it */
#define MAX_STOP_SIGNALS 4
static int stop_signals[MAX_STOP_SIGNALS];
static int stop_signal_count;
static int stderr_copy = -1; /* descriptor 2 as the first command was set (close-on-exec) */
static long open_max = 1024; /* file descriptors to mark close-on-exec without close_range */
#define FAULT_SIGNAL_COUNT 2
static const int fault_signals[FAULT_SIGNAL_COUNT] = {SIGSEGV, SIGBUS};
static struct sigaction previous_fault_actions[FAULT_SIGNAL_COUNT];
static int faults_handled; /* the fault handlers are installed (once, with the first SIGABRT one) */
static int kept_fd = -1;      /* the one descriptor from 3 on that the command inherits (-1: none) */

/* Async-signal-safe: every descriptor from 3 on is closed by execve (kept if it fails). */
static void close_on_exec_from_3(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
        return;
    }
#endif
    for (long fd = 3; fd < open_max; fd++) {
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0) {
            fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
}

/* Async-signal-safe: whether a stop signal (SIGTERM, SIGINT) reached the process, from the
 * bytes Python's own C handler wrote to its wakeup pipe as each signal arrived (its Python
 * handler may not have run yet: the main thread may be the one inside PortAudio). */
static int stop_signalled(void)
{
    unsigned char bytes[256];
    ssize_t count;
    while (stop_fd >= 0 && (count = read(stop_fd, bytes, sizeof bytes)) > 0) {
        for (ssize_t i = 0; i < count; i++) {
            for (int j = 0; j < stop_signal_count; j++) {
                if (bytes[i] == stop_signals[j]) {
                    stop_seen = 1;
                }
            }
        }
    }
    return stop_seen;
}

/* Async-signal-safe, on the signalled thread: while a PortAudio call is under way, end the
 * process with the exit code (exiting) or execute the command (unless a stop signal came);
 * returns if neither. */
static void restart_or_exit_if_armed(void)
{
    Command *command = NULL;
    if (__atomic_load_n(&arm_count, __ATOMIC_ACQUIRE) > 0 && __atomic_load_n(&exit_code, __ATOMIC_ACQUIRE) >= 0) {
        _exit(__atomic_load_n(&exit_code, __ATOMIC_ACQUIRE));
    }
    if (__atomic_load_n(&arm_count, __ATOMIC_ACQUIRE) > 0 && !stop_signalled()) {
        command = __atomic_exchange_n(&current, NULL, __ATOMIC_ACQ_REL);
    }
    if (command != NULL) {
        sigset_t held;
        sigemptyset(&held);
        sigaddset(&held, SIGTERM);
        sigaddset(&held, SIGHUP);
        pthread_sigmask(SIG_SETMASK, &held, NULL);
        if (stderr_copy >= 0) {
            dup2(stderr_copy, 2);
        }
        close_on_exec_from_3();
        int kept = __atomic_load_n(&kept_fd, __ATOMIC_ACQUIRE);
        if (kept >= 3) {
            int flags = fcntl(kept, F_GETFD);
            if (flags >= 0) {
                fcntl(kept, F_SETFD, flags & ~FD_CLOEXEC);
            }
        }
        execve(command->path, command->argv, command->envp);
    }
}

static void on_abort(int signum)
{
    restart_or_exit_if_armed();
    __atomic_store_n(&installed, 0, __ATOMIC_RELEASE); /* the next set_command installs it again */
    sigaction(signum, &previous_action, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signum);
    pthread_sigmask(SIG_UNBLOCK, &only, NULL);
    raise(signum);
}

/* A segmentation fault or bus error: as an abort while a PortAudio call is under way (libjack
 * can free PortAudio's client under it once its server died), else what the signal did before
 * (its previous action is put back, and the fault happens again as this handler returns). */
static void on_fault(int signum)
{
    restart_or_exit_if_armed();
    for (int i = 0; i < FAULT_SIGNAL_COUNT; i++) {
        if (fault_signals[i] == signum) {
            sigaction(signum, &previous_fault_actions[i], NULL);
        }
    }
}

/* A forked child (the recording's background save) is not the daemon: it never executes it. */
static void forget_in_child(void)
{
    __atomic_store_n(&current, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&arm_count, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&exit_code, -1, __ATOMIC_RELEASE);
}

static void free_command(Command *command)
{
    if (command == NULL) {
        return;
    }
    for (char **p = command->argv; p != NULL && *p != NULL; p++) {
        free(*p);
    }
    for (char **p = command->envp; p != NULL && *p != NULL; p++) {
        free(*p);
    }
    free(command->argv);
    free(command->envp);
    free(command->path);
    free(command);
}

/* A NULL-terminated copy of a sequence of bytes objects, or NULL with an exception set. */
static char **copy_strings(PyObject *sequence, const char *what)
{
    PyObject *items = PySequence_Fast(sequence, what);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    char **strings = calloc((size_t)count + 1, sizeof(char *));
    if (strings == NULL) {
        Py_DECREF(items);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        char *text;
        Py_ssize_t length;
        if (PyBytes_AsStringAndSize(item, &text, &length) < 0 ||
            (strings[i] = strdup(text)) == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_NoMemory();
            }
            for (Py_ssize_t j = 0; j < i; j++) {
                free(strings[j]);
            }
            free(strings);
            Py_DECREF(items);
            return NULL;
        }
    }
    Py_DECREF(items);
    return strings;
}

/* The SIGABRT handler, installed once (again after it fell through); -1 with errno if not. */
static int install_handler(void)
{
    if (!__atomic_load_n(&installed, __ATOMIC_ACQUIRE)) {
        long limit = sysconf(_SC_OPEN_MAX);
        open_max = limit > 0 && limit < 65536 ? limit : 65536;
        if (stderr_copy < 0) {
            stderr_copy = fcntl(2, F_DUPFD_CLOEXEC, 3); /* -1 without a stderr: left as it is */
        }
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = on_abort;
        action.sa_flags = SA_NODEFER; /* a raise() from the handler is delivered at once */
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGABRT, &action, &previous_action) != 0) {
            return -1;
        }
        if (!faults_handled) { /* once: a second install would take itself for the previous action */
            struct sigaction fault;
            memset(&fault, 0, sizeof fault);
            fault.sa_handler = on_fault;
            fault.sa_flags = SA_NODEFER;
            sigemptyset(&fault.sa_mask);
            for (int i = 0; i < FAULT_SIGNAL_COUNT; i++) {
                sigaction(fault_signals[i], &fault, &previous_fault_actions[i]);
            }
            faults_handled = 1;
        }
        __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
        static int at_fork_registered;
        if (!at_fork_registered) {
            pthread_atfork(NULL, NULL, forget_in_child);
            at_fork_registered = 1;
        }
    }
    return 0;
}

static PyObject *set_command(PyObject *self, PyObject *args)
{
    const char *path;
    PyObject *argv_items, *env_items;
    (void)self;
    if (!PyArg_ParseTuple(args, "yOO", &path, &argv_items, &env_items)) {
        return NULL;
    }
    Command *command = calloc(1, sizeof(Command));
    if (command == NULL) {
        return PyErr_NoMemory();
    }
    command->path = strdup(path);
    command->argv = copy_strings(argv_items, "argv must be a sequence of bytes");
    command->envp = command->argv == NULL ? NULL : copy_strings(env_items, "env must be a sequence of bytes");
    if (command->path == NULL || command->argv == NULL || command->envp == NULL) {
        free_command(command);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    if (install_handler() != 0) {
        free_command(command);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    free_command(__atomic_exchange_n(&current, command, __ATOMIC_ACQ_REL));
    Py_RETURN_NONE;
}

static PyObject *set_exit_code(PyObject *self, PyObject *args)
{
    int code;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &code)) {
        return NULL;
    }
    if (code >= 0 && install_handler() != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    __atomic_store_n(&exit_code, code, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *keep_across_exec(PyObject *self, PyObject *args)
{
    int fd;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &fd)) {
        return NULL;
    }
    __atomic_store_n(&kept_fd, fd >= 3 ? fd : -1, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *clear_command(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    free_command(__atomic_exchange_n(&current, NULL, __ATOMIC_ACQ_REL));
    Py_RETURN_NONE;
}

static PyObject *watch_stop_signals(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *signals;
    (void)self;
    if (!PyArg_ParseTuple(args, "iO", &fd, &signals)) {
        return NULL;
    }
    PyObject *items = PySequence_Fast(signals, "signals must be a sequence of numbers");
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    if (count > MAX_STOP_SIGNALS) {
        Py_DECREF(items);
        return PyErr_Format(PyExc_ValueError, "at most %d stop signals", MAX_STOP_SIGNALS);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        long number = PyLong_AsLong(PySequence_Fast_GET_ITEM(items, i));
        if (number == -1 && PyErr_Occurred()) {
            Py_DECREF(items);
            return NULL;
        }
        stop_signals[i] = (int)number;
    }
    Py_DECREF(items);
    stop_signal_count = (int)count;
    stop_fd = fd;
    Py_RETURN_NONE;
}

static PyObject *arm(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(__atomic_add_fetch(&arm_count, 1, __ATOMIC_ACQ_REL));
}

static PyObject *disarm(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(__atomic_sub_fetch(&arm_count, 1, __ATOMIC_ACQ_REL));
}

static PyObject *armed(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyBool_FromLong(__atomic_load_n(&arm_count, __ATOMIC_ACQUIRE) > 0 &&
                           __atomic_load_n(&current, __ATOMIC_ACQUIRE) != NULL);
}

static PyMethodDef methods[] = {
    {"set_command", set_command, METH_VARARGS,
     "set_command(path, argv, env): what to execute on SIGABRT while armed (bytes each)"},
    {"clear_command", clear_command, METH_NOARGS, "no command: SIGABRT acts as before"},
    {"keep_across_exec", keep_across_exec, METH_VARARGS,
     "keep_across_exec(fd): the command inherits this descriptor (>= 3; -1: none)"},
    {"set_exit_code", set_exit_code, METH_VARARGS,
     "set_exit_code(code): while armed, an abort or a fault ends the process with code (-1: not)"},
    {"watch_stop_signals", watch_stop_signals, METH_VARARGS,
     "watch_stop_signals(fd, signals): the read end of Python's wakeup pipe; no command runs "
     "once one of these signals arrived"},
    {"arm", arm, METH_NOARGS, "a PortAudio call starts; returns the count under way"},
    {"disarm", disarm, METH_NOARGS, "a PortAudio call ended; returns the count under way"},
    {"armed", armed, METH_NOARGS, "whether SIGABRT now executes the command"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "livepitch._abort_restart",
    .m_doc = "Executing livepitch again when PortAudio aborts during a call (optional).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__abort_restart(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
