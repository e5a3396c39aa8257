"""Graph surgery on the Basic Pitch ONNX model, in memory at load time (imports ``onnx``).

Splits the graph where the harmonic-stacked, normalised CQT enters the CNN: a *front end*
(audio window -> features ``[1, 172, 264, 8]``) and the *CNN* (features ``[1, n, 264, 8]`` ->
posteriors for those n frames). The CNN is fully convolutional in time; only its final
Reshapes fix 172 frames, so they are rewritten to ``[1, -1, bins]``. Nothing derived from the
weights is written to disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, utils

from livepitch.errors import ModelError, first_line
from livepitch.geometry import WINDOW_FRAMES, WINDOW_SAMPLES
from livepitch.model_weights import CnnWeights, ConvWeights, FrontEndWeights, IncrementalWeights

FEATURE_CHANNELS = 8
"""Harmonics stacked in the CNN's input (0.5, 1, 2, ..., 7)."""


@dataclass(frozen=True)
class SplitGraphs:
    """Serialised front-end and CNN graphs and their tensor names."""

    frontend: bytes
    cnn: bytes
    audio_input: str
    features: str
    outputs: tuple[str, str, str]
    """Names of the note, onset and contour outputs."""


def _features_tensor(model: onnx.ModelProto) -> str:
    """The tensor the CNN starts from: the harmonic stack, ``[batch, frames, 264, 8]``.

    It is the input of the Transpose (to channels-first) that feeds the CNN's first Conv.
    """
    producers = {output: node for node in model.graph.node for output in node.output}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        source = producers.get(node.input[0])
        if source is not None and source.op_type == "Transpose" and "harmonic" in source.input[0].lower():
            return str(source.input[0])
    raise ModelError("cannot find where the CNN starts in the model graph (not a Basic Pitch model?)")


def split_graph(path: Path, outputs: tuple[str, str, str]) -> SplitGraphs:
    """Split the model at ``path`` into front end and CNN; ``outputs`` = note, onset, contour names."""
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and others for a bad file
        raise ModelError(f"cannot read model {path}: {first_line(err)}") from err
    model = onnx.shape_inference.infer_shapes(model)
    audio_input = model.graph.input[0].name
    features = _features_tensor(model)
    extractor = utils.Extractor(model)
    frontend = extractor.extract_model([audio_input], [features])
    cnn = extractor.extract_model([features], list(outputs))
    _free_frame_count(cnn)
    return SplitGraphs(
        frontend=frontend.SerializeToString(),
        cnn=cnn.SerializeToString(),
        audio_input=audio_input,
        features=features,
        outputs=outputs,
    )


def _free_frame_count(cnn: onnx.ModelProto) -> None:
    """Rewrite Reshape targets that hard-code 172 frames to take any count (batch 1)."""
    reshape_shapes = {node.input[1] for node in cnn.graph.node if node.op_type == "Reshape"}
    for initializer in cnn.graph.initializer:
        if initializer.name not in reshape_shapes:
            continue
        shape = numpy_helper.to_array(initializer)
        if shape.ndim != 1 or WINDOW_FRAMES not in shape.tolist() or shape[0] != -1:
            continue
        shape = shape.copy()
        shape[0] = 1
        shape[shape.tolist().index(WINDOW_FRAMES)] = -1
        initializer.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), initializer.name))
    for value in list(cnn.graph.output) + list(cnn.graph.input):
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 2:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
            dims[1].ClearField("dim_value")
            dims[1].dim_param = "frames"
    del cnn.graph.value_info[:]


def read_incremental_weights(path: Path) -> IncrementalWeights:
    """The front end's and CNN's constants, read off the graph at ``path`` (see ``model_weights``)."""
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and others for a bad file
        raise ModelError(f"cannot read model {path}: {first_line(err)}") from err
    try:
        reader = _GraphReader(model)
        return IncrementalWeights(reader.front_end(), reader.cnn())
    except ModelError:
        raise
    except Exception as err:  # any surprise in a graph that is not Basic Pitch's: one message
        reason = first_line(err) or type(err).__name__
        raise ModelError(f"{path}: unexpected graph structure for a Basic Pitch model ({reason})") from err


class _GraphReader:
    """Finds the Basic Pitch graph's constants by the graph's structure, not by node names."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.nodes = list(model.graph.node)
        self.constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in model.graph.node:  # Constant nodes hold constants too
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {output: node for node in self.nodes for output in node.output}
        self.features = _features_tensor(model)
        self.feature_index = next(i for i, n in enumerate(self.nodes) if self.features in n.output)

    @staticmethod
    def _first(nodes: Iterator[onnx.NodeProto], what: str) -> onnx.NodeProto:
        node = next(nodes, None)
        if node is None:
            raise ValueError(f"no node computes {what}")
        return node

    def _const(self, name: str) -> np.ndarray:
        return np.asarray(self.constants[name])

    def _attrs(self, node: onnx.NodeProto) -> dict[str, object]:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def front_end(self) -> FrontEndWeights:
        front = self.nodes[: self.feature_index + 1]
        convs = [n for n in front if n.op_type == "Conv"]
        cqt = [n for n in convs if self._const(n.input[1]).shape[0] > 1]
        lowpass = [n for n in convs if self._const(n.input[1]).shape[0] == 1]
        kernel_names = list(dict.fromkeys(n.input[1] for n in cqt))
        assert len(kernel_names) == 2, "two CQT kernel banks (real, imaginary)"
        for node in cqt + lowpass:
            if len(node.input) > 2:
                assert not np.any(self._const(node.input[2])), "front-end convolutions have no bias"
        kernels = np.concatenate([self._const(k).reshape(self._const(k).shape[0], -1) for k in kernel_names])
        lowpass_names = set(n.input[1] for n in lowpass)
        assert len(lowpass_names) == 1, "one lowpass filter"
        taps = kernels.shape[1]
        strides = sorted({int(self._attrs(n)["strides"][-1]) for n in cqt}, reverse=True)  # type: ignore[index]
        assert all(int(self._attrs(n)["strides"][-1]) == 2 for n in lowpass)  # type: ignore[index]
        pads = [n for n in front if n.op_type == "Pad"]
        reflect = [n for n in pads if self._attrs(n).get("mode", b"constant") == b"reflect"]
        zeros = [n for n in pads if self._attrs(n).get("mode", b"constant") == b"constant"]
        reflect_pad = {int(self._const(n.input[1]).max()) for n in reflect}
        # the zero pads before the lowpass stages (the harmonic stack's pads come after the features' source)
        lowpass_pad = {int(self._const(n.input[1]).max()) for n in zeros if "harmonic" not in n.output[0]}
        assert len(reflect_pad) == 1 and len(lowpass_pad) == 1, "one padding per kind"
        kernel_pad, lp_pad = reflect_pad.pop(), lowpass_pad.pop()
        lengths = [WINDOW_SAMPLES]
        for _ in strides[1:]:
            lengths.append((lengths[-1] + 2 * lp_pad - taps) // 2 + 1)
        for length, stride in zip(lengths, strides, strict=True):
            assert (length + 2 * kernel_pad - taps) // stride + 1 == WINDOW_FRAMES, "172 columns per octave"
        scale_mul = self._first(
            (
                n
                for n in front
                if n.op_type == "Mul" and n.input[1] in self.constants and self._const(n.input[1]).ndim == 3
            ),
            "the CQT's per-bin scale",
        )
        bin_scale = self._const(scale_mul.input[1]).reshape(-1)
        log = self._first((n for n in front if n.op_type == "Log"), "the log of the CQT power")
        for reduction in ("ReduceMin", "ReduceMax"):  # the window-wide normalisation this engine replaces
            self._first((n for n in front if n.op_type == reduction), f"the normalisation's {reduction}")
        floor_add = self.producer[log.input[0]]
        log_floor = float(self._const(floor_add.input[1]).reshape(-1)[0])
        final_slice = self.producer[self.features]
        stack = self.producer[final_slice.input[0]]
        n_feature_bins = self._slice_bounds(final_slice)[1]
        shifts, bn_output = self._harmonic_shifts(stack)
        bn_add = self.producer[bn_output]
        bn_mul = self.producer[bn_add.input[0]]
        return FrontEndWeights(
            kernels=kernels.astype(np.float32),
            lowpass=self._const(lowpass[0].input[1]).reshape(-1).astype(np.float32),
            lowpass_pad_samples=lp_pad,
            kernel_pad_samples=kernel_pad,
            column_strides=tuple(strides),
            octave_lengths=tuple(lengths),
            n_bins=int(bin_scale.shape[0]),
            bin_scale=bin_scale.astype(np.float32),
            log_floor=log_floor,
            batch_norm_scale=float(self._const(bn_mul.input[1]).reshape(-1)[0]),
            batch_norm_offset=float(self._const(bn_add.input[1]).reshape(-1)[0]),
            harmonic_shifts=tuple(shifts),
            n_feature_bins=int(n_feature_bins),
        )

    def _slice_bounds(self, node: onnx.NodeProto, axis: int = 2) -> tuple[int, int]:
        starts, ends = self._const(node.input[1]).tolist(), self._const(node.input[2]).tolist()
        axes = self._const(node.input[3]).tolist() if len(node.input) > 3 else list(range(len(starts)))
        position = axes.index(axis)
        return int(starts[position]), int(ends[position])

    def _harmonic_shifts(self, stack: onnx.NodeProto) -> tuple[list[int], str]:
        """Each stacked channel's bin shift, and the tensor they are all taken from."""
        padded = [self.producer.get(name) for name in stack.input]
        sources = {self.producer[p.input[0]].input[0] for p in padded if p is not None and p.op_type == "Pad"}
        assert len(sources) == 1, "harmonics shifted from one tensor"
        source = sources.pop()
        shifts = []
        for name, node in zip(stack.input, padded, strict=True):
            if name == source:
                shifts.append(0)
                continue
            assert node is not None and node.op_type == "Pad"
            start, end = self._slice_bounds(self.producer[node.input[0]])
            shifts.append(start if start > 0 else end)
        return shifts, source

    def cnn(self) -> CnnWeights:
        convs = [n for n in self.nodes[self.feature_index + 1 :] if n.op_type == "Conv"]
        sources = {id(n): self._conv_sources(n.input[0], convs) for n in convs}

        def by_sources(wanted: tuple[str, ...], stride: int | None = None) -> onnx.NodeProto:
            found = [
                n
                for n in convs
                if sources[id(n)] == wanted
                and (stride is None or int(self._attrs(n)["strides"][-1]) == stride)  # type: ignore[index]
            ]
            assert len(found) == 1, f"one convolution fed by {wanted}"
            node: onnx.NodeProto = found[0]
            return node

        contour_1 = by_sources(("features",), 1)
        onset_1 = by_sources(("features",), 3)
        contour_2 = by_sources((contour_1.output[0],))
        note_1 = by_sources((contour_2.output[0],))
        note_2 = by_sources((note_1.output[0],))
        onset_2 = by_sources((note_2.output[0], onset_1.output[0]))
        return CnnWeights(*(self._conv(n) for n in (contour_1, contour_2, note_1, note_2, onset_1, onset_2)))

    def _conv_sources(self, tensor: str, convs: list[onnx.NodeProto]) -> tuple[str, ...]:
        """The convolutions (or "features") a tensor is computed from, through non-Conv nodes, in input order."""
        if tensor == self.features:
            return ("features",)
        node = self.producer.get(tensor)
        if node is None:
            return ()
        if node.op_type == "Conv":
            return (node.output[0],)
        found: list[str] = []
        for name in node.input:
            if name in self.constants:
                continue
            for source in self._conv_sources(name, convs):
                if source not in found:
                    found.append(source)
        return tuple(found)

    def _conv(self, node: onnx.NodeProto) -> ConvWeights:
        attrs = self._attrs(node)
        pads = [int(p) for p in attrs["pads"]]  # type: ignore[attr-defined]
        weight = self._const(node.input[1]).astype(np.float32)
        kernel_time = weight.shape[2]
        assert pads[0] == pads[2] == (kernel_time - 1) // 2 and pads[1] == pads[3], "'same' padding in time"
        assert int(attrs["strides"][0]) == 1  # type: ignore[index]
        return ConvWeights(
            weight=weight,
            bias=self._const(node.input[2]).reshape(-1).astype(np.float32),
            pad_bins=pads[1],
            stride_bins=int(attrs["strides"][1]),  # type: ignore[index]
        )
