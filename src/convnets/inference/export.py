"""A trained network as an ONNX file that carries what inference needs, and back.

:func:`export_onnx` loads a target the way ``predict`` does (:meth:`Predictor.from_target`:
a run directory, a weights file or a model name) and writes it with the TorchScript-based
exporter (``torch.onnx.export(..., dynamo=False)``), which needs nothing beyond torch and
onnx; the dynamo exporter would also need onnxscript. The graph has one input ``images``
``(batch, C, H, W)`` and one output, with a dynamic batch axis. Its ``metadata_props``
hold the run's inference spec (``convnets.inference``: class names, input size, mean/std
and evaluation preset, as in ``inference.json``) and what the output is
(``convnets.output``: ``logits``, or ``probabilities`` for a snapshot ensemble, whose
members' softmaxes are averaged inside the graph as ``eval`` averages them).

Opset 17 by default: the newest the TorchScript exporter and ONNX Runtime both handle
without caveats, and every operator these networks use has existed since opset 11 or
earlier, so 11..20 (the TorchScript exporter's ceiling) are accepted.

GUNN's gradual update runs, by default, as a hand-written autograd Function that the
exporter cannot trace; the export switches each GunnLayer to its reference evaluation
(``fast = False``: the same weights, the same outputs, segment by segment) for the time
of the trace.

Back: :class:`OnnxBackend` runs such a file with ONNX Runtime for a :class:`Predictor`, so
``Predictor.from_target("model.onnx")`` (and ``convnets predict model.onnx IMAGES``) answers
what it answers for the run. A file is taken for ONNX by its ``.onnx`` name
(:func:`is_onnx_file`); :class:`OnnxPredictor` is that Predictor under its older name.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from ..core import first_line
from ..errors import ConfigError, NotFoundError, WeightsError
from ..models.gunn import reference_evaluation
from .predict import Predictor

if TYPE_CHECKING:
    from ..engine.inference_spec import InferenceSpec

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "ONNX_SUFFIX", "export_onnx", "write_onnx",
           "is_onnx_file", "OnnxBackend", "OnnxPredictor"]

DEFAULT_OPSET = 17
MIN_OPSET = 11
MAX_OPSET = 20  # torch.onnx's TorchScript exporter goes no further
ONNX_SUFFIX = ".onnx"  # what `convnets export --onnx` is given, and how a file is known as one
SPEC_KEY = "convnets.inference"
OUTPUT_KEY = "convnets.output"


class _Ensemble(nn.Module):
    """The averaged softmax of several networks, as ensemble_predict computes it."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(dim=0)


def _check_path(path: str, force: bool) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a folder; give the path of the .onnx file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NotFoundError(f"{path}: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{path}: cannot write in {folder}")
    if os.path.exists(path) and not force:
        raise ConfigError(f"{path} exists; give --force to replace it")
    return path


def export_onnx(target: str, path: str, *, opset: int = DEFAULT_OPSET,
                input_size: int | None = None, model: str | None = None, ema: bool = False,
                force: bool = False) -> Predictor:
    """Write ``target`` (run directory, weights file or model name) to ``path`` as ONNX;
    returns the Predictor it exported. ``input_size`` (pixels, square) replaces the spec's
    height and width. An existing ``path`` is refused unless ``force``."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError.of("opset", f"must be a whole number from {MIN_OPSET} to {MAX_OPSET}, "
                                      f"got {opset!r}")
    if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int)
                                   or input_size < 1):
        raise ConfigError.of("input_size", f"must be a positive whole number, got {input_size!r}")
    path = _check_path(path, force)
    predictor = Predictor.from_target(target, model=model, device="cpu", ema=ema)
    spec = predictor.spec
    if input_size is not None:
        from dataclasses import replace

        spec = replace(spec, input_size=(spec.input_size[0], input_size, input_size))
    write_onnx(predictor.members, spec, path, opset=opset, weights=predictor.weights)
    return predictor


def write_onnx(members: Sequence[nn.Module], spec: InferenceSpec, path: str, *,
               opset: int = DEFAULT_OPSET, weights: Sequence[str] = ()) -> None:
    """Write the network (several ``members``: their averaged softmax) with ``spec`` in its
    metadata to ``path``, replacing it; the checks of :func:`export_onnx` are the caller's."""
    import io

    import onnx

    net = members[0] if len(members) == 1 else _Ensemble(members)
    net.eval()
    example = torch.zeros(2, *spec.input_size)
    buf = io.BytesIO()  # the proto stays in memory to get its metadata: one write to path
    with torch.no_grad(), reference_evaluation(net):
        try:
            torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=opset,
                              input_names=["images"], output_names=["output"],
                              dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
        except torch.onnx.errors.SymbolicValueError as err:
            # e.g. an adaptive pooling whose output does not divide its input, which a
            # smaller --input-size than the network's own causes; not a convnets bug.
            raise ConfigError(f"cannot export {spec.model} at input {spec.input_size}: "
                              f"{str(err).split('. ')[0]}") from None
    proto = onnx.load_model_from_string(buf.getvalue())
    meta = {SPEC_KEY: json.dumps(spec.to_dict()),
            OUTPUT_KEY: "logits" if len(members) == 1 else "probabilities",
            "convnets.weights": json.dumps(list(weights))}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, path)


def is_onnx_file(target: str) -> bool:
    """Whether ``target`` names an ONNX file: by its ``.onnx`` name, not by its content. An
    ONNX file is a bare protobuf message with no signature to sniff (its first byte can be
    a safetensors header's), and the name is what ``convnets export --onnx`` writes; a
    corrupt ``model.onnx`` is then reported as an unreadable ONNX file, not as some
    weights format. A folder so named is a run directory, not a file."""
    return target.lower().endswith(ONNX_SUFFIX) and not os.path.isdir(target)


class OnnxBackend:
    """A :class:`~convnets.inference.predict.Backend` for an ONNX file written by
    :func:`export_onnx`, run by ONNX Runtime on the CPU; ``spec`` is the inference spec
    in its metadata. There is no PyTorch module (``members`` is empty)."""

    name = "ONNX Runtime"
    members: tuple = ()

    def __init__(self, path: str) -> None:
        import onnx
        import onnxruntime as ort
        from google.protobuf.message import DecodeError

        from ..engine.inference_spec import InferenceSpec

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise NotFoundError(f"no ONNX file {path}")
        try:
            proto = onnx.load_model(path, load_external_data=False)
        except DecodeError as err:
            raise WeightsError(f"{path}: not a readable ONNX file ({err})") from None
        props = {p.key: p.value for p in proto.metadata_props}
        if SPEC_KEY not in props or props.get(OUTPUT_KEY) not in ("logits", "probabilities"):
            raise WeightsError(f"{path}: an ONNX file without convnets' metadata (write it with "
                               "`convnets export`)")
        try:
            raw = json.loads(props[SPEC_KEY])
        except json.JSONDecodeError:
            raise WeightsError(f"{path}: its {SPEC_KEY} metadata is not JSON") from None
        self.spec = InferenceSpec.from_dict(raw, f"{path} ({SPEC_KEY})")
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(),
                                                providers=["CPUExecutionProvider"])
        except (ort.capi.onnxruntime_pybind11_state.Fail,
                ort.capi.onnxruntime_pybind11_state.InvalidGraph,
                ort.capi.onnxruntime_pybind11_state.InvalidProtobuf) as err:
            raise WeightsError(f"{path}: ONNX Runtime cannot load it "
                               f"({first_line(err)})") from None
        self.output = props[OUTPUT_KEY]
        self.input_name = self.session.get_inputs()[0].name
        self.device = torch.device("cpu")

    def outputs(self, batch: torch.Tensor) -> torch.Tensor:
        """The graph's output for a preprocessed batch (logits, or an ensemble's probabilities)."""
        out = self.session.run(None, {self.input_name: batch.float().contiguous().numpy()})[0]
        return torch.from_numpy(out)

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.outputs(batch)
        return out if self.output == "probabilities" else out.softmax(dim=1)


class OnnxPredictor(Predictor):
    """``Predictor.from_target(path)`` for an ONNX file, under the name it had before
    ``from_target`` knew ONNX; ``output``, ``session`` and :meth:`logits` are its backend's."""

    def __init__(self, path: str) -> None:
        backend = OnnxBackend(path)
        super().__init__(backend, backend.spec, weights=[os.fspath(path)])

    @property
    def output(self) -> str:
        return self.backend.output

    @property
    def session(self):
        return self.backend.session

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The graph's output for a preprocessed batch (logits, or an ensemble's probabilities)."""
        return self.backend.outputs(batch)
