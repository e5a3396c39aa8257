"""The incremental engine: streaming CQT and CNN against the graph, posteriors against the window
engine, block-size invariance, an hour without drift, and the engine end to end."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime
import pytest
from onnx import helper, utils

from livepitch.engine import build_engine, stream_audio
from livepitch.errors import ModelError
from livepitch.frames import Frame
from livepitch.geometry import WINDOW_SAMPLES
from livepitch.incremental_engine import FeatureColumns, IncrementalEngine
from livepitch.model_graph import read_incremental_weights, split_graph
from livepitch.settings import LiveSettings
from livepitch.streaming_cnn import CnnColumns, CnnStream
from livepitch.streaming_cqt import StreamingCqt
from livepitch.window_engine import WindowEngine
from tests.event_checks import check_event_stream, note_ons
from tests.synth import sequence

INCREMENTAL = LiveSettings.model_validate({"stream": {"engine": "incremental"}})


def _chords(seconds: float) -> npt.NDArray[np.float32]:
    """Polyphony over five octaves plus a little noise, so every CQT bin has energy."""
    notes = [(0.25 * i, 0.6, 33 + (7 * i) % 60) for i in range(int(seconds * 4) - 3)]
    audio = sequence(notes, seconds)
    noise = np.random.default_rng(7).standard_normal(audio.shape[0])
    mixed: npt.NDArray[np.float32] = (audio + 0.003 * noise).astype(np.float32)
    return mixed


@cache
def _graph_log_cqt_session(path: Path) -> tuple[onnxruntime.InferenceSession, str]:
    """The graph up to its log-power CQT ``[1, 172, 309]`` (the input of the window-wide minimum)."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    minimum = next(node for node in graph.graph.node if node.op_type == "ReduceMin")
    part = utils.Extractor(graph).extract_model([graph.graph.input[0].name], [minimum.input[0]])
    return onnxruntime.InferenceSession(part.SerializeToString()), graph.graph.input[0].name


def _graph_log_cqt(model: Any, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    session, name = _graph_log_cqt_session(model.path)
    result: npt.NDArray[np.float32] = session.run(None, {name: window.reshape(1, -1, 1)})[0][0]
    return result


def test_streaming_cqt_equals_the_graphs_cqt_for_any_lag(model: Any) -> None:
    audio = _chords(8.0)
    edge_frame = 500
    edge = 256 * edge_frame + 68
    window = audio[edge - WINDOW_SAMPLES : edge]
    reference = _graph_log_cqt(model, window)  # column j is frame edge_frame - 171 + j
    cqt = StreamingCqt(model.incremental_weights().front_end, max_lag_frames=40)
    for start in range(0, edge, 3000):
        cqt.push(audio[start : min(edge, start + 3000)])
    lags = np.array([0, 1, 2, 5, 12, 40])
    columns = cqt.columns(edge_frame - lags)
    for lag, column in zip(lags, columns, strict=True):
        # every octave, including the padding the graph puts after the newest sample; float32
        # sums in another order move quiet bins by hundredths of a dB, the lowest octaves'
        # +-3 s support also meets the window's start (0.1 dB on a ~100 dB range)
        deviation = np.abs(column - reference[171 - lag])
        assert deviation.max() < 0.1 and deviation.mean() < 2e-3, lag
        assert deviation[-6 * 36 :].max() < 0.02, lag  # the top six octaves
    np.testing.assert_allclose(cqt.column(edge_frame - 5), columns[3], atol=1e-3, rtol=0)  # batch or single


def test_streaming_cqt_keeps_the_sample_grid_for_an_hour(model: Any) -> None:
    period = 22050  # one second of chords, repeated: cheap to make, rich to check
    second = _chords(1.0)
    cqt = StreamingCqt(model.incremental_weights().front_end, max_lag_frames=4)
    hour_frames = 3600 * 22050 // 256
    edge = 256 * hour_frames + 68
    block = np.tile(second, 8)
    pushed = 0
    while pushed < edge:
        take = min(block.shape[0], edge - pushed)
        offset = pushed % period
        cqt.push(np.roll(block, -offset)[:take])
        pushed += take
    assert cqt.consumed_samples == edge
    positions = (np.arange(edge - WINDOW_SAMPLES, edge)) % period
    window = second[positions]
    reference = _graph_log_cqt(model, window)
    deviation = np.abs(cqt.column(hour_frames - 2) - reference[169])
    assert deviation.max() < 0.1 and deviation.mean() < 2e-3


def _graph_cnn(model: Any) -> tuple[onnxruntime.InferenceSession, onnxruntime.InferenceSession, Any]:
    names = model._outputs.note, model._outputs.onset, model._outputs.contour
    graphs = split_graph(model.path, names)
    return onnxruntime.InferenceSession(graphs.frontend), onnxruntime.InferenceSession(graphs.cnn), graphs


@pytest.mark.parametrize("composite", [False, True], ids=["patches", "composite contour_1"])
@pytest.mark.parametrize(
    ("depth", "provisional"), [(12, 1), (7, 7)], ids=["1 provisional", "the default's 7"]
)
def test_cnn_stream_equals_the_graphs_cnn_at_a_window_edge(
    model: Any, composite: bool, depth: int, provisional: int
) -> None:
    frontend, cnn_session, graphs = _graph_cnn(model)
    window = _chords(3.0)[:WINDOW_SAMPLES]
    features = frontend.run([graphs.features], {graphs.audio_input: window.reshape(1, -1, 1)})[0][0]
    note, onset, contour = cnn_session.run(list(graphs.outputs), {graphs.features: features[None]})
    weights = model.incremental_weights()
    harmonics = (tuple(weights.front_end.harmonic_shifts), weights.front_end.n_bins) if composite else None
    cnn = CnnStream(weights.cnn, 264, depth=depth, harmonics=harmonics)
    for _ in range(16):  # history before the window: only reaches the first 10 columns
        cnn.push(features[0], edge=False)
    last_final = 171 - provisional
    for column in range(last_final - 5):
        cnn.push(features[column], edge=False)
    for column in range(last_final - 5, last_final):  # edges before, as the engine pushes every frame
        cnn.push(features[column], newer=features[column + 1 : column + 1 + provisional])
    # the last column final, the provisional ones after it: the window's edge is column 171
    edge = cnn.push(features[last_final], newer=features[last_final + 1 : 172])
    assert edge is not None
    np.testing.assert_allclose(edge.note, note[0, -depth:], atol=1e-5)
    np.testing.assert_allclose(edge.onset, onset[0, -depth:], atol=1e-5)
    np.testing.assert_allclose(edge.contour, contour[0, -depth:], atol=1e-5)


def _frames(engine: Any, audio: npt.NDArray[np.float32], block: int) -> list[Frame]:
    frames: list[Frame] = []
    for start in range(0, audio.shape[0], block):
        frames.extend(engine.push(audio[start : start + block]))
    frames.extend(engine.flush())
    return frames


def test_posteriors_match_the_window_engine_at_a_generous_lookahead(model: Any) -> None:
    audio = _chords(2.5)
    window = _frames(WindowEngine(model, 20, 1), audio, 1024)
    incremental = _frames(IncrementalEngine(model.incremental_weights(), 20, 20), audio, 1024)
    assert [f.index for f in incremental] == [f.index for f in window]
    n_frames = len(window)
    assert max(f.index + len(f.preview_note) for f in incremental) == n_frames - 1  # none past the audio
    assert all(len(f.preview_onset) == len(f.preview_note) for f in incremental)
    assert [f.emitted_sample for f in incremental] == [f.emitted_sample for f in window]
    for name in ("note", "onset", "contour"):
        ours = np.stack([getattr(f, name) for f in incremental])
        theirs = np.stack([getattr(f, name) for f in window])
        deviation = np.abs(ours - theirs)
        # each CQT column is computed once, 20 frames after its centre; the window engine
        # recomputes it with more audio every hop, which the lowest octaves (+-3 s) notice
        assert deviation.mean() < 0.002 and np.quantile(deviation, 0.99) < 0.03, name
        # above MIDI 45: from the first frame (windows reaching before the stream) and after
        assert deviation[:, 24:].max() < 0.1 and deviation[30:, 24:].max() < 0.04, name


@pytest.mark.parametrize("refresh", [0, 4])
def test_block_sizes_1_64_1000_4096_give_identical_frames(model: Any, refresh: int) -> None:
    audio = _chords(1.6)
    runs = [
        _frames(IncrementalEngine(model.incremental_weights(), 4, refresh), audio, b)
        for b in (1, 64, 1000, 4096)
    ]
    first = runs[0]
    assert [f.index for f in first] == list(range(len(first)))
    assert len(first) == -(-audio.shape[0] // 256)
    for other in runs[1:]:
        assert len(other) == len(first)
        for a, b in zip(first, other, strict=True):
            assert (a.index, a.centre_sample, a.emitted_sample) == (
                b.index,
                b.centre_sample,
                b.emitted_sample,
            )
            np.testing.assert_array_equal(a.onset, b.onset)
            np.testing.assert_array_equal(a.note, b.note)
            np.testing.assert_array_equal(a.contour, b.contour)
            np.testing.assert_array_equal(a.preview_note, b.preview_note)


def test_frames_are_published_on_the_grid_with_the_configured_lookahead(model: Any) -> None:
    audio = _chords(4.0)
    engine = IncrementalEngine(model.incremental_weights(), 3, 3)
    rng = np.random.default_rng(3)
    frames: list[Frame] = []
    start = 0
    while start < audio.shape[0]:
        size = int(rng.integers(1, 3000))
        frames.extend(engine.push(audio[start : start + size]))
        start += size
    for t, frame in enumerate(frames):
        assert (frame.index, frame.centre_sample, frame.emitted_sample) == (t, 256 * t, 256 * (t + 3) + 68)
        assert frame.preview_note.shape == (3, 88)
    assert engine.lookahead_samples == 68 + 3 * 256


def test_an_hour_of_audio_keeps_every_frame_on_the_grid(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule alone (the CQT and CNN, checked for an hour above and below, stubbed out)."""
    engine = IncrementalEngine(model.incremental_weights(), 5, 6)
    n_bins = engine._cqt.weights.n_bins
    monkeypatch.setattr(engine._cqt, "push", lambda samples: None)
    monkeypatch.setattr(engine._cqt, "columns", lambda indices: np.zeros((len(indices), n_bins), np.float32))
    features = np.zeros((264, 8), np.float32), np.zeros((6, 264, 8), np.float32)
    monkeypatch.setattr(engine._features, "push", lambda *_: features)
    monkeypatch.setattr(
        engine._cnn, "push", lambda *_, **__: CnnColumns(*(np.zeros((6, 264), np.float32),) * 3)
    )
    block = np.zeros(4093, np.float32)  # blocks that never line up with frames
    hour_samples = 3600 * 22050
    positions: list[tuple[int, int]] = []
    while engine.consumed_samples + block.shape[0] <= hour_samples:
        positions.extend((f.index, f.emitted_sample) for f in engine.push(block))
    indices, emitted = np.array(positions).T
    np.testing.assert_array_equal(indices, np.arange(indices.shape[0]))
    np.testing.assert_array_equal(emitted, 256 * (indices + 5) + 68)
    assert indices.shape[0] + len(engine.flush()) == -(-engine.consumed_samples // 256)


def test_incremental_engine_plays_the_melody(model: Any) -> None:
    melody = [(0.5, 0.5, 48), (1.2, 0.5, 55), (1.9, 0.5, 60), (2.6, 0.5, 67)]
    engine = build_engine(model, INCREMENTAL)
    assert isinstance(engine.frames, IncrementalEngine)
    events = list(stream_audio(sequence(melody, 3.4), engine, 1024))
    check_event_stream(events)
    ons = [e for e in note_ons(events) if e.velocity >= 80]
    assert [e.pitch for e in ons] == [48, 55, 60, 67]
    for on, (onset_s, _, _) in zip(ons, melody, strict=True):
        assert abs(on.time_sample / 22050 - onset_s) <= 2 * 256 / 22050
        # lookahead 68 + 6 x 256 samples, hop 1, 1 frame of confirmation
        assert on.emitted_sample - on.time_sample <= 68 + 6 * 256 + 256 + 256


def test_reset_gives_a_fresh_engine_and_flush_ends_the_stream(model: Any) -> None:
    audio = _chords(1.2)
    weights = model.incremental_weights()
    fresh = _frames(IncrementalEngine(weights, 4, 3), audio, 700)
    engine = IncrementalEngine(weights, 4, 3)
    _frames(engine, _chords(2.0)[::-1].copy(), 500)  # another stream, flushed
    assert engine.flush() == []
    with pytest.raises(RuntimeError, match="reset"):
        engine.push(audio[:100])
    engine.reset()
    again = _frames(engine, audio, 700)
    assert len(again) == len(fresh)
    for a, b in zip(fresh, again, strict=True):
        assert (a.index, a.emitted_sample) == (b.index, b.emitted_sample)
        np.testing.assert_array_equal(a.onset, b.onset)
        np.testing.assert_array_equal(a.contour, b.contour)


def test_normalisation_spans_the_windows_172_columns(model: Any) -> None:
    front_end = model.incremental_weights().front_end
    refresh = 6
    features = FeatureColumns(front_end, 172 - refresh)
    loud = np.full(front_end.n_bins, -10.0, np.float32)
    quiet = np.full(front_end.n_bins, -60.0, np.float32)
    features.push(loud, np.tile(quiet, (refresh, 1)))  # the loud column is the oldest final one
    for _ in range(171 - refresh):
        features.push(quiet, np.tile(quiet, (refresh, 1)))
        assert features.last_range_db[1] == -10.0  # still inside the last 172 columns
    features.push(quiet, np.tile(quiet, (refresh, 1)))  # 172 columns after it: out of the window
    assert features.last_range_db[1] == -60.0


def test_silence_gives_no_events(model: Any) -> None:
    assert list(stream_audio(np.zeros(22050 * 2, np.float32), build_engine(model, INCREMENTAL), 512)) == []


def _edited_model(model: Any, tmp_path: Path, edit: Any) -> Path:
    graph = onnx.load(str(model.path))
    edit(graph)
    path = tmp_path / "edited.onnx"
    onnx.save(graph, str(path))
    return path


def test_graph_constants_are_read_from_initializers_or_constant_nodes(model: Any, tmp_path: Path) -> None:
    def scale_as_constant_node(graph: onnx.ModelProto) -> None:
        scale = next(i for i in graph.graph.initializer if i.dims == [309, 1, 1])
        graph.graph.initializer.remove(scale)
        graph.graph.node.insert(0, helper.make_node("Constant", [], [scale.name], value=scale))

    path = _edited_model(model, tmp_path, scale_as_constant_node)
    np.testing.assert_array_equal(
        read_incremental_weights(path).front_end.bin_scale, model.incremental_weights().front_end.bin_scale
    )


@pytest.mark.parametrize("op", ["Log", "ReduceMin"])
def test_a_basic_pitch_graph_missing_a_stage_is_refused_in_one_line(
    model: Any, tmp_path: Path, op: str
) -> None:
    def remove(graph: onnx.ModelProto) -> None:
        graph.graph.node.remove(next(n for n in graph.graph.node if n.op_type == op))

    with pytest.raises(ModelError, match="unexpected graph structure") as raised:
        read_incremental_weights(_edited_model(model, tmp_path, remove))
    assert "\n" not in str(raised.value)


def test_a_graph_that_is_not_basic_pitch_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 43844, 1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 43844, 1])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match="Basic Pitch"):
        read_incremental_weights(path)


def test_the_cnn_yields_the_processor_between_layers_once_a_millisecond_has_passed(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from types import SimpleNamespace

    import livepitch.streaming_cnn as streaming_cnn

    sleeps: list[float] = []
    monkeypatch.setattr(
        streaming_cnn, "time", SimpleNamespace(perf_counter=time.perf_counter, sleep=sleeps.append)
    )
    features = np.zeros((264, 8), np.float32)
    cnn = CnnStream(model.incremental_weights().cnn, 264, depth=4)
    for _ in range(16):
        cnn.push(features, edge=False)
    sleeps.clear()
    cnn.yield_every_s = 0.0
    cnn.push(features, newer=features[None])
    assert sleeps == [0] * 6  # before each of the six layers
    cnn.yield_every_s = 3600.0
    cnn.push(features, newer=features[None])
    assert len(sleeps) == 6  # none: the last yield was just now
    cnn.yield_every_s = None  # no Python callback waits (the daemon's C one)
    cnn._yielded_at = 0.0
    cnn.push(features, newer=features[None])
    assert len(sleeps) == 6


@pytest.mark.parametrize("kernel_bins", [1, 5])
def test_the_composite_kernel_equals_the_patches_for_any_harmonic_layout(kernel_bins: int) -> None:
    from livepitch.model_weights import ConvWeights
    from livepitch.streaming_cnn import HarmonicConv, ScatterConv

    rng = np.random.default_rng(kernel_bins)
    shifts, n_bins, bins_in = (-2, 0, 3, 5), 14, 10
    weight = rng.standard_normal((3, len(shifts), 3, kernel_bins)).astype(np.float32)
    conv = ConvWeights(weight, np.zeros(3, np.float32), (kernel_bins - 1) // 2, 1)
    columns = rng.uniform(0, 1, (4, n_bins)).astype(np.float32)
    features = np.zeros((4, bins_in, len(shifts)), np.float32)  # channel h at bin g: y[g + shifts[h]]
    for h, shift in enumerate(shifts):
        for g in range(bins_in):
            if 0 <= g + shift < n_bins:
                features[:, g, h] = columns[:, g + shift]
    patches, composite = ScatterConv(conv), HarmonicConv(conv, shifts, n_bins)
    patches.reset(bins_in)
    composite.reset(bins_in)
    for column in features:
        expected = patches.step(column[None], provisional=False)
        got = composite.step(column[None], provisional=False)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # and the provisional columns after the last, with two more inputs on the way
    expected = patches.step(features[:3]).copy()
    np.testing.assert_allclose(composite.step(features[:3]), expected, atol=1e-5)


def test_the_daemons_incremental_model_never_opens_onnxruntime_until_a_window_runs(model: Any) -> None:
    from livepitch.factories import default_factories
    from livepitch.settings import DaemonSettings

    deferred = default_factories().model(DaemonSettings.model_validate({"model": {"path": str(model.path)}}))
    engine = build_engine(deferred, INCREMENTAL)
    events = list(stream_audio(sequence([(0.2, 0.4, 64)], 1.0), engine, 512))
    assert [e.pitch for e in note_ons(events)] == [64]
    assert deferred._session_ready is None  # type: ignore[attr-defined]
    # a reload to the window engine with the same model opens it then, with the same posteriors
    window = _chords(2.0)[:WINDOW_SAMPLES]
    got = deferred.run_window(window, 100, 5)
    expected = model.run_window(window, 100, 5)
    np.testing.assert_array_equal(got.note, expected.note)
    np.testing.assert_array_equal(got.onset, expected.onset)


@pytest.mark.parametrize(
    ("in_channels", "kernel_time", "kernel_bins", "stride"), [(1, 7, 7, 3), (3, 3, 5, 1)]
)
def test_gathering_equals_scattering_for_final_and_provisional_columns(
    in_channels: int, kernel_time: int, kernel_bins: int, stride: int
) -> None:
    """``GatherConv`` (note_1) keeps inputs, ``ScatterConv`` contributions: the same outputs,
    whatever mix of final-only and provisional steps comes (warm-up, then edges)."""
    from livepitch.model_weights import ConvWeights
    from livepitch.streaming_cnn import GatherConv, ScatterConv

    rng = np.random.default_rng(in_channels)
    weight = rng.standard_normal((4, in_channels, kernel_time, kernel_bins)).astype(np.float32)
    conv = ConvWeights(weight, rng.standard_normal(4).astype(np.float32), (kernel_bins - 1) // 2, stride)
    scatter, gather = ScatterConv(conv), GatherConv(conv)
    scatter.reset(20)
    gather.reset(20)
    for step, provisional in enumerate([0, 0, 0, 2, 2, 0, 5, 1, 1, 0]):
        inputs = rng.uniform(-1, 1, (1 + provisional, 20, in_channels)).astype(np.float32)
        edge = step != 0 and provisional > 0
        expected = scatter.step(inputs, edge).copy()
        np.testing.assert_allclose(gather.step(inputs, edge), expected, atol=1e-5)
        assert expected.shape[0] == (1 + scatter.radius + provisional if edge else 1)


def test_the_engine_multiplies_on_one_blas_thread_whatever_numpy_was_given(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program embedding the engine (``livepitch.api``) may run numpy's BLAS on several
    threads: OpenBLAS split the engine's products across threads that spin for each other,
    taking 15 times the CPU, slower than real time (benchmarks/bench_embedding.py)."""
    from threadpoolctl import ThreadpoolController

    from livepitch import blas_threads

    blas = ThreadpoolController().select(user_api="blas")
    threads_seen: list[int] = []
    matmul = np.matmul

    def spy(*args: Any, **kwargs: Any) -> Any:
        if len(threads_seen) < 3:
            threads_seen.append(max(info["num_threads"] for info in blas.info()))
        return matmul(*args, **kwargs)

    with blas.limit(limits=2):  # numpy as a program may have it (its default on two cores)
        if max(info["num_threads"] for info in blas.info()) < 2:
            pytest.skip("this BLAS runs one thread only")
        monkeypatch.setattr(blas_threads, "_blas", None)  # (as first used in that program)
        engine = build_engine(model, INCREMENTAL)
        monkeypatch.setattr(np, "matmul", spy)
        engine.feed(sequence([(0.1, 0.2, 60)], 0.3))
        monkeypatch.setattr(np, "matmul", matmul)
        assert threads_seen == [1, 1, 1]
        assert max(info["num_threads"] for info in blas.info()) == 2  # the program's again
        # engines on two threads: the count is one while either computes, and the program's
        # again once both are done, whatever order they leave in (each restoring what it found
        # left it at one for good)
        first, second = blas_threads.one_blas_thread(), blas_threads.one_blas_thread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert max(info["num_threads"] for info in blas.info()) == 1
        second.__exit__(None, None, None)
        assert max(info["num_threads"] for info in blas.info()) == 2
