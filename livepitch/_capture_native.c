/*
 * livepitch's audio callback in C: PortAudio's audio thread copies each input block into the
 * capture ring and counts overflows, without taking Python's GIL.
 *
 * A Python callback must take the GIL from the worker thread on every device block; with a
 * short device period that wait (milliseconds while the worker runs numpy) made the callback
 * late and JACK counted an xrun (docs/benchmarks.md, run N). This function does what
 * livepitch.ring_buffer.AudioRing.write does, on the same memory: the ring's float32 frames
 * and its int64 counters are numpy arrays that livepitch.native_capture hands over by
 * address in a CaptureRing. The worker (Python) only advances COUNTER_READ; this callback
 * only advances the others.
 *
 * Built as an optional extension (setup.py); without it livepitch uses its Python callback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Indices into the ring's counters; livepitch/ring_buffer.py names the same slots. */
enum {
    COUNTER_WRITTEN = 0,   /* frames written, ever */
    COUNTER_READ = 1,      /* frames read, ever (the worker's) */
    COUNTER_OVERFLOWS = 2, /* blocks dropped because the ring was full */
    COUNTER_DROPPED = 3,   /* frames in those blocks */
    COUNTER_DEVICE_OVERFLOWS = 4, /* blocks PortAudio flagged paInputOverflow */
    COUNTER_DELIVERED = 5, /* frames the device delivered, kept or dropped */
    COUNTER_LAST_CALLBACK_NS = 6, /* time.monotonic_ns()'s clock at the last callback [ns] */
    COUNTER_SLOTS = 8
};

/* Bumped whenever CaptureRing or the counter slots change: livepitch.native_capture refuses a
 * binary built from another version (an editable install keeps the old one until rebuilt). */
#define ABI_VERSION 3

#define PA_CONTINUE 0
#define PA_INPUT_OVERFLOW 0x00000002UL /* paInputOverflow in portaudio.h */

typedef struct {
    float *frames;        /* capacity_frames * channels samples, interleaved */
    int64_t *counters;    /* COUNTER_SLOTS int64 */
    int64_t capacity_frames;
    int64_t channels;
} CaptureRing;

/* Python's time.monotonic_ns(), read on the audio thread without a system call: CLOCK_MONOTONIC
 * on Linux (the vDSO), mach_absolute_time's clock on macOS (CLOCK_MONOTONIC there counts sleep). */
static int64_t monotonic_ns(void)
{
#ifdef __APPLE__
    return (int64_t)clock_gettime_nsec_np(CLOCK_UPTIME_RAW);
#else
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
#endif
}

/* PortAudio's PaStreamCallback, on its audio thread: interleaved float32 input in, nothing out. */
static int capture_callback(const void *input, void *output, unsigned long frame_count,
                            const void *time_info, unsigned long status_flags, void *user_data)
{
    CaptureRing *ring = (CaptureRing *)user_data;
    int64_t *counters = ring->counters;
    int64_t frames = (int64_t)frame_count;
    (void)output;
    (void)time_info;
    __atomic_store_n(&counters[COUNTER_LAST_CALLBACK_NS], monotonic_ns(), __ATOMIC_RELAXED);

    if (status_flags & PA_INPUT_OVERFLOW) {
        __atomic_store_n(&counters[COUNTER_DEVICE_OVERFLOWS],
                         counters[COUNTER_DEVICE_OVERFLOWS] + 1, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&counters[COUNTER_DELIVERED], counters[COUNTER_DELIVERED] + frames,
                     __ATOMIC_RELAXED);
    if (input == NULL || frames <= 0) {
        return PA_CONTINUE;
    }

    int64_t written = counters[COUNTER_WRITTEN]; /* only this thread writes it */
    int64_t read = __atomic_load_n(&counters[COUNTER_READ], __ATOMIC_ACQUIRE);
    if (frames > ring->capacity_frames - (written - read)) {
        __atomic_store_n(&counters[COUNTER_OVERFLOWS], counters[COUNTER_OVERFLOWS] + 1,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&counters[COUNTER_DROPPED], counters[COUNTER_DROPPED] + frames,
                         __ATOMIC_RELAXED);
        return PA_CONTINUE;
    }
    int64_t start = written % ring->capacity_frames;
    int64_t first = ring->capacity_frames - start;
    if (first > frames) {
        first = frames;
    }
    size_t frame_bytes = (size_t)ring->channels * sizeof(float);
    const char *source = (const char *)input;
    memcpy(ring->frames + start * ring->channels, source, (size_t)first * frame_bytes);
    if (first < frames) {
        memcpy(ring->frames, source + (size_t)first * frame_bytes, (size_t)(frames - first) * frame_bytes);
    }
    /* Publish the frames only after they are in place. */
    __atomic_store_n(&counters[COUNTER_WRITTEN], written + frames, __ATOMIC_RELEASE);
    return PA_CONTINUE;
}

static PyObject *callback_address(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)&capture_callback);
}

/* A full fence, for the Python reader: after loading COUNTER_WRITTEN and before copying the
 * frames it covers, and after the copy and before storing COUNTER_READ (numpy's loads and
 * stores carry no ordering of their own; x86 needs none, ARM does). */
static PyObject *fence(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

/* A message function that prints nothing, for libjack's jack_set_error_function and
 * jack_set_info_function: libjack may call them on any of its threads, the realtime one too,
 * so they cannot be Python. */
static void discard_message(const char *message)
{
    (void)message;
}

static PyObject *discard_message_address(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)&discard_message);
}

/* What libjack's port-connect callback records for livepitch.jack_watch: the port ids of each
 * disconnection, in a ring that the notification thread (the one writer) fills and Python
 * reads by the count. A Python callback there deadlocked the process: jack_client_close
 * cancels that thread at any instruction, and one cancelled while it held the GIL left it
 * held for good. */
#define DISCONNECTION_SLOTS 256

typedef struct {
    uint32_t ports[DISCONNECTION_SLOTS][2]; /* (source id, destination id) */
    uint64_t recorded;                      /* disconnections recorded, ever */
    uint32_t server_stopped;                /* set by record_shutdown */
} Disconnections;

/* JackPortConnectCallback, on libjack's notification thread. */
static void record_disconnection(uint32_t port_a, uint32_t port_b, int connected, void *arg)
{
    Disconnections *disconnections = (Disconnections *)arg;
    if (connected || disconnections == NULL) {
        return;
    }
    uint64_t count = __atomic_load_n(&disconnections->recorded, __ATOMIC_RELAXED);
    disconnections->ports[count % DISCONNECTION_SLOTS][0] = port_a;
    disconnections->ports[count % DISCONNECTION_SLOTS][1] = port_b;
    __atomic_store_n(&disconnections->recorded, count + 1, __ATOMIC_RELEASE);
}

/* JackShutdownCallback, on libjack's thread: the server went away (the same hazard as above:
 * a Python callback there, cancelled by jack_client_close, left the GIL held for good). */
static void record_shutdown(void *arg)
{
    Disconnections *disconnections = (Disconnections *)arg;
    if (disconnections != NULL) {
        __atomic_store_n(&disconnections->server_stopped, 1, __ATOMIC_RELEASE);
    }
}

static PyObject *shutdown_recorder_address(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)&record_shutdown);
}

static PyObject *disconnection_recorder_address(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)&record_disconnection);
}

static PyMethodDef methods[] = {
    {"callback_address", callback_address, METH_NOARGS,
     "The address of the C function to pass to Pa_OpenStream as its PaStreamCallback."},
    {"discard_message_address", discard_message_address, METH_NOARGS,
     "The address of a C message function that prints nothing (for libjack's message hooks)."},
    {"fence", fence, METH_NOARGS, "A full memory fence (the ring's reader calls it around its copy)."},
    {"shutdown_recorder_address", shutdown_recorder_address, METH_NOARGS,
     "The address of a C JackShutdownCallback that sets its arg's server_stopped."},
    {"disconnection_recorder_address", disconnection_recorder_address, METH_NOARGS,
     "The address of a C JackPortConnectCallback that records disconnections (its arg: a ring)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_capture_native",
    .m_doc = "livepitch's PortAudio input callback in C (copies into the capture ring without the GIL).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__capture_native(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "COUNTER_SLOTS", COUNTER_SLOTS) < 0 ||
        PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "RING_STRUCT_BYTES", (long)sizeof(CaptureRing)) < 0 ||
        PyModule_AddIntConstant(m, "DISCONNECTION_SLOTS", DISCONNECTION_SLOTS) < 0 ||
        PyModule_AddIntConstant(m, "DISCONNECTIONS_STRUCT_BYTES", (long)sizeof(Disconnections)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
