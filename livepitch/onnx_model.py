"""The Basic Pitch ONNX graph behind onnxruntime: the only module that imports onnxruntime."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from livepitch.errors import ModelError, first_line
from livepitch.geometry import N_CONTOUR_BINS, N_PITCHES, WINDOW_FRAMES, WINDOW_SAMPLES
from livepitch.native_output import quiet_native_stderr
from livepitch.posteriors import WindowOutputs

if TYPE_CHECKING:
    import onnxruntime

    from livepitch.model_graph import SplitGraphs
    from livepitch.model_weights import IncrementalWeights

CNN_CONTEXT_FRAMES = 10
"""The CNN's receptive field reaches this many frames each side (onset head: +-10)."""


@dataclass(frozen=True)
class _OutputNames:
    note: str
    onset: str
    contour: str


class BasicPitchModel:
    """Runs the Basic Pitch graph on batches of 43844-sample windows at 22050 Hz.

    Input and output names are resolved and shapes checked when the file is loaded (with
    ``defer_session``, when a window first runs).
    ``threads`` is onnxruntime's intra-op thread count (0 lets onnxruntime choose).
    Not thread-safe for concurrent ``run`` calls from several threads; one owner thread.
    """

    def __init__(
        self, path: str | Path, threads: int = 0, spin: bool = True, defer_session: bool = False
    ) -> None:
        """``defer_session``: load onnxruntime and the graph into it only when a window first
        runs. The incremental engine never runs one and reads the graph's constants instead,
        so the daemon spares the memory onnxruntime takes (about 30 MB)."""
        self.path = Path(path)
        self._threads = threads
        self._spin = spin
        self._session_ready: onnxruntime.InferenceSession | None = None
        self._names: tuple[str, _OutputNames] | None = None
        self._split: _SplitSessions | None = None
        self._weights: IncrementalWeights | None = None
        if not defer_session:
            self._open_graph()

    def _open_graph(self) -> tuple[onnxruntime.InferenceSession, str, _OutputNames]:
        """The whole graph's session and its input and output names, opened on first use."""
        if self._session_ready is None or self._names is None:
            session = self._open(str(self.path))
            self._names = (self._resolve_input(session), self._resolve_outputs(session))
            self._session_ready = session
        return self._session_ready, *self._names

    @property
    def _outputs(self) -> _OutputNames:
        return self._open_graph()[2]

    def _open(self, model: str | bytes) -> onnxruntime.InferenceSession:
        try:
            with quiet_native_stderr():  # a warning at import when HOME cannot be written, in colour
                import onnxruntime
        except (ImportError, OSError) as err:  # a broken install: one message, not a traceback
            raise ModelError(f"cannot load onnxruntime: {first_line(err)}") from err

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        if not self._spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return onnxruntime.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises several unrelated types
            raise ModelError(f"cannot load model {self.path}: {first_line(err)}") from err

    def _resolve_input(self, session: onnxruntime.InferenceSession) -> str:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: expected one input, found {len(inputs)}")
        shape = list(inputs[0].shape)
        if len(shape) != 3 or shape[1:] != [WINDOW_SAMPLES, 1]:
            raise ModelError(
                f"{self.path}: input shape {shape} is not [batch, {WINDOW_SAMPLES}, 1];"
                " not a Basic Pitch model"
            )
        return str(inputs[0].name)

    def _resolve_outputs(self, session: onnxruntime.InferenceSession) -> _OutputNames:
        """Find the contour output by its width and order note before onset.

        The SavedModel signature lists its outputs by key (contour, note, onset), which the
        ONNX export numbers ``:0``, ``:1``, ``:2``; of the two 88-wide outputs the lower number
        is the note posterior.
        """
        contour: list[str] = []
        pitch_wide: list[str] = []
        for output in session.get_outputs():
            shape = list(output.shape)
            if len(shape) != 3 or (isinstance(shape[1], int) and shape[1] != WINDOW_FRAMES):
                raise ModelError(f"{self.path}: output {output.name} has shape {shape}")
            if shape[2] == N_CONTOUR_BINS:
                contour.append(output.name)
            elif shape[2] == N_PITCHES:
                pitch_wide.append(output.name)
        if len(contour) != 1 or len(pitch_wide) != 2:
            raise ModelError(
                f"{self.path}: expected one {N_CONTOUR_BINS}-bin and two {N_PITCHES}-bin outputs"
            )
        note, onset = sorted(pitch_wide, key=_output_order)
        return _OutputNames(note=note, onset=onset, contour=contour[0])

    def run(self, windows: npt.NDArray[np.float32]) -> WindowOutputs:
        """Run the model on ``windows`` of shape ``[batch, 43844]`` (float32, 22050 Hz)."""
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must be [batch, {WINDOW_SAMPLES}], got {windows.shape}")
        session, input_name, outputs = self._open_graph()
        feed = {input_name: np.ascontiguousarray(windows, dtype=np.float32)[:, :, None]}
        note, onset, contour = session.run([outputs.note, outputs.onset, outputs.contour], feed)
        return WindowOutputs(note=note, onset=onset, contour=contour)

    def run_window(self, window: npt.NDArray[np.float32], first_frame: int, n_frames: int) -> WindowOutputs:
        """Posteriors ``[n_frames, bins]`` of frames ``first_frame ..`` of one window.

        Runs the front end on the whole window (the CQT and its window-wide normalisation)
        and the CNN only on those frames plus the context its receptive field needs, which
        gives exactly the full graph's values (``tests/test_window_engine.py`` pins it).
        """
        if first_frame < 0 or n_frames <= 0 or first_frame + n_frames > WINDOW_FRAMES:
            raise ValueError("frames outside the window")
        split = self._split_sessions()
        features = split.frontend.run(
            [split.graphs.features], {split.graphs.audio_input: window.reshape(1, -1, 1)}
        )[0]
        low = max(0, first_frame - CNN_CONTEXT_FRAMES)
        high = min(WINDOW_FRAMES, first_frame + n_frames + CNN_CONTEXT_FRAMES)
        note, onset, contour = split.cnn.run(
            list(split.graphs.outputs), {split.graphs.features: features[:, low:high]}
        )
        rows = slice(first_frame - low, first_frame - low + n_frames)
        return WindowOutputs(note=note[0, rows], onset=onset[0, rows], contour=contour[0, rows])

    def incremental_weights(self) -> IncrementalWeights:
        """The graph's constants as numpy arrays, for the incremental engine (read once, cached)."""
        if self._weights is None:
            try:
                from livepitch.model_graph import read_incremental_weights
            except ImportError as err:
                raise ModelError(
                    f"the incremental engine needs the onnx package ({err}); reinstall livepitch"
                ) from err
            self._weights = read_incremental_weights(self.path)
        return self._weights

    def _split_sessions(self) -> _SplitSessions:
        if self._split is None:
            try:
                from livepitch.model_graph import split_graph
            except ImportError as err:
                raise ModelError(f"streaming needs the onnx package ({err}); reinstall livepitch") from err

            graphs = split_graph(self.path, (self._outputs.note, self._outputs.onset, self._outputs.contour))
            self._split = _SplitSessions(graphs, self._open(graphs.frontend), self._open(graphs.cnn))
        return self._split


@dataclass(frozen=True)
class _SplitSessions:
    graphs: SplitGraphs
    frontend: onnxruntime.InferenceSession
    cnn: onnxruntime.InferenceSession


def _output_order(name: str) -> tuple[int, str]:
    match = re.search(r":(\d+)$", name)
    return (int(match.group(1)) if match else 0, name)
