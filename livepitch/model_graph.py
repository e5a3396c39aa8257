"""Graph surgery on the Basic Pitch ONNX model, in memory at load time (imports ``onnx``).

Splits the graph where the harmonic-stacked, normalised CQT enters the CNN: a *front end*
(audio window -> features ``[1, 172, 264, 8]``) and the *CNN* (features ``[1, n, 264, 8]`` ->
posteriors for those n frames). The CNN is fully convolutional in time; only its final
Reshapes fix 172 frames, so they are rewritten to ``[1, -1, bins]``. Nothing derived from the
weights is written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, utils

from livepitch.errors import ModelError, first_line
from livepitch.geometry import WINDOW_FRAMES

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
