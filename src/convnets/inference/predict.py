"""Ask a trained network what images show: the top-k classes, named, with probabilities.

A :class:`Predictor` loads a network once (a run directory, a weights file or a bare
model name, read back by :func:`convnets.engine.runs.resolve_target` and
:func:`~convnets.engine.runs.load_models` like every other command) together with what
it needs to see a new image as it saw its training images (class names, input size,
normalisation and evaluation preset: the run's ``inference.json``), then predicts any
number of images in batches. Images are decoded by :func:`convnets.data.load_rgb`, so
every format and mode it reads (grey, palette, RGBA, CMYK, 16-bit) arrives as RGB.

What runs the network is the Predictor's :class:`Backend`: :class:`TorchBackend` for
PyTorch modules, or ONNX Runtime for a file written by ``convnets export``
(:class:`convnets.inference.export.OnnxBackend`); preprocessing, class names, top-k,
batching and folders are the Predictor's own, whichever runs it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, Sequence

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..core import local_device
from ..errors import ConfigError, DataError

if TYPE_CHECKING:
    from ..engine.inference_spec import InferenceSpec

__all__ = ["Prediction", "Predictor", "Backend", "TorchBackend", "predict", "find_images"]


@dataclass(frozen=True)
class Prediction:
    """The ``k`` most probable classes for one image, most probable first.

    ``source`` is the path as given, or ``<image N>`` for an image given in memory (N:
    its place in the input). ``error`` is set, and the rest empty, for an input that
    could not be read when the caller asked to go on past such inputs."""

    source: str
    indices: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    probabilities: tuple[float, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"source": self.source, "error": self.error}
        return {"source": self.source,
                "topk": [{"index": i, "class": c, "probability": p}
                         for i, c, p in zip(self.indices, self.classes, self.probabilities)]}


def find_images(path: str) -> list[str]:
    """The image files under directory ``path`` (by extension, recursively, sorted by
    path; hidden files and folders skipped), found as training finds an image folder's
    (:func:`convnets.data.folders.image_files`: no special files, links to folders only
    within ``path``); a DataError if there is none."""
    from ..data.folders import IMG_EXTENSIONS, image_files

    found = image_files(path)
    if not found:
        raise DataError(f"{path}: no image files ({', '.join(IMG_EXTENSIONS[:5])}, ...) in "
                        "this folder or below")
    return found


def _expand(images: Any) -> list:
    """A single image or a sequence of them, folders replaced by the images they hold."""
    if isinstance(images, (str, os.PathLike, Image.Image, torch.Tensor, bytes)):
        images = [images]
    out: list = []
    for item in images:
        if isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
            out += find_images(os.fspath(item))
        else:
            out.append(item)
    return out


def _name(item: Any, position: int) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"<image {position}>"


def _read_rgb(item: Any) -> Image.Image:
    """An input as an RGB PIL image, or a BadImageError that names it."""
    from ..data.images import BadImageError, load_rgb, to_rgb

    if isinstance(item, Image.Image):
        return to_rgb(item)
    if not isinstance(item, (str, os.PathLike)):
        raise ConfigError(f"cannot predict a {type(item).__name__}: give a path, a folder, a PIL "
                          "image or a (C, H, W) tensor")
    path = os.fspath(item)
    if os.path.isdir(path):
        raise BadImageError(f"{path}: is a folder; give its images or the folder itself as an input")
    return load_rgb(path)


class _Inputs(Dataset):
    """Inputs to preprocess, possibly in DataLoader workers; a bad one becomes its error."""

    def __init__(self, items: list, transform) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, Exception | None]:
        from ..data.datasets import BadImageError

        try:
            return i, self.transform(self.items[i]), None
        except BadImageError as err:
            return i, None, err


def _collate(batch: list) -> list:
    return batch


class Backend(Protocol):
    """What turns a preprocessed batch into class probabilities for a :class:`Predictor`.

    Probabilities, not logits: a snapshot ensemble's answer is the average of its
    members' softmaxes (as ``eval`` computes it), which no single set of logits gives,
    and an exported ensemble's graph outputs that average itself."""

    name: str  # what runs the network, for messages: "PyTorch", "ONNX Runtime"
    device: torch.device  # where batches are computed
    members: Sequence[nn.Module]  # the PyTorch modules; empty when there are none

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """``(B, classes)`` on the CPU for a preprocessed ``(B, C, H, W)`` batch."""
        ...


class TorchBackend:
    """PyTorch modules (eval mode, on ``device``): one network, or the snapshots of an
    ensemble whose softmaxes are averaged."""

    name = "PyTorch"

    def __init__(self, members: Sequence[nn.Module], device: torch.device) -> None:
        if not members:
            raise ValueError("a TorchBackend needs at least one model")
        self.device = device
        self.members = [m.to(device).eval() for m in members]

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        from ..engine.evaluation import ensemble_predict

        return ensemble_predict(self.members, batch.to(self.device)).cpu()


class Predictor:
    """A network ready to be asked about images; see the module docstring.

    ``backend`` runs the network. ``model`` is the PyTorch network (eval mode, on
    ``device``): the last snapshot of a snapshot-ensemble run, whose predictions average
    all its ``members`` as ``eval`` does; None (and ``members`` empty) when the backend
    has no PyTorch module, as for an ONNX file. ``classes`` has one name per output;
    ``input_size``, ``mean``, ``std`` and ``preset`` say what :meth:`preprocess` does.
    """

    def __init__(self, backend: Backend, spec: InferenceSpec, *,
                 weights: Sequence[str] = ()) -> None:
        self.backend = backend
        self.spec = spec
        self.weights = list(weights)
        self.model_name = spec.model
        self.classes = list(spec.classes)
        self.input_size = tuple(spec.input_size)
        self.mean, self.std, self.preset = tuple(spec.mean), tuple(spec.std), spec.preset
        self.transform = spec.transform()

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def members(self) -> list[nn.Module]:
        return list(self.backend.members)

    @property
    def model(self) -> nn.Module | None:
        return self.backend.members[-1] if self.backend.members else None

    @classmethod
    def from_modules(cls, members: Sequence[nn.Module], spec: InferenceSpec,
                     device: torch.device, *, weights: Sequence[str] = ()) -> "Predictor":
        """PyTorch ``members`` (several: a snapshot ensemble) described by ``spec``."""
        return cls(TorchBackend(members, device), spec, weights=weights)

    @classmethod
    def from_target(cls, target: str, *, model: str | None = None, device: str = "auto",
                    ema: bool = False) -> "Predictor":
        """Load a run directory (its last checkpoint; ``ema``: its EMA weights), a weights
        file (in a run directory, or with ``model``), a bare model name, or an ONNX file
        written by ``convnets export`` (run by ONNX Runtime on the CPU; it names its own
        model and holds one set of weights, so ``model``, ``ema`` and ``device`` do not
        apply to it; see :func:`~convnets.inference.export.is_onnx_file`)."""
        from ..engine.runs import load_models, resolve_target
        from .export import OnnxBackend, is_onnx_file

        target = os.fspath(target)
        if is_onnx_file(target):
            backend = OnnxBackend(target)
            return cls(backend, backend.spec, weights=[target])
        resolved = resolve_target(target, model=model, ema=ema)
        members = load_models(resolved)
        return cls.from_modules(members, resolved.inference_spec(members[0].num_classes),
                                local_device(device), weights=resolved.weights)

    # --- one image at a time -------------------------------------------------------------

    def preprocess(self, image: Any) -> torch.Tensor:
        """A path, a PIL image of any mode or a ``(C, H, W)`` tensor (uint8, or float in
        [0, 1]) as the model's input: ``(C, H, W)`` float32, resized, cropped and
        normalised as the training run's evaluation did."""
        if isinstance(image, torch.Tensor):
            if image.ndim != 3 or image.shape[0] not in (1, 3):
                raise ConfigError(f"an image tensor must be (C, H, W) with C 1 or 3, got shape "
                                  f"{tuple(image.shape)}")
            return self.transform(image)
        return self.transform(_read_rgb(image))

    # --- many ----------------------------------------------------------------------------

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, classes)`` for a preprocessed batch ``(B, C, H, W)``:
        the softmax, averaged over the members of an ensemble."""
        return self.backend.probabilities(batch)

    def predict(self, images: Any, topk: int = 5, *, batch_size: int = 32) -> list[Prediction]:
        """The top-``topk`` classes of each image (paths, folders, PIL images or tensors;
        one or a sequence). An input that cannot be read raises a DataError naming it."""
        return list(self.iter_predictions(images, topk, batch_size=batch_size))

    def iter_predictions(self, images: Any, topk: int = 5, *, batch_size: int = 32,
                         keep_going: bool = False, workers: int = 0) -> Iterator[Prediction]:
        """:meth:`predict`, one result at a time as batches complete. With ``keep_going``
        an unreadable input yields a Prediction with its ``error`` instead of raising;
        ``workers`` processes decode images in parallel."""
        from ..engine.config import check_whole

        check_whole(topk=(topk, 1), batch_size=(batch_size, 1), workers=(workers, 0))
        items = _expand(images)
        k = min(topk, len(self.classes))
        loader = DataLoader(_Inputs(items, self.preprocess), batch_size=batch_size,
                            num_workers=workers, collate_fn=_collate)
        for batch in loader:
            good = [(i, x) for i, x, _ in batch if x is not None]
            top: Iterable = ()
            if good:
                probs = self.probabilities(torch.stack([x for _, x in good]))
                values, indices = probs.topk(k, dim=1)
                top = iter(zip(values.tolist(), indices.tolist()))
            for i, x, error in batch:
                source = _name(items[i], i)
                if x is None:
                    if not keep_going:
                        raise error
                    yield Prediction(source, error=str(error))
                    continue
                p, idx = next(top)
                yield Prediction(source, tuple(idx), tuple(self.classes[j] for j in idx),
                                 tuple(p))


def predict(target: str, images: Any, topk: int = 5, model: str | None = None, *,
            device: str = "auto") -> list[Prediction]:
    """``Predictor.from_target(target, model=model).predict(images, topk)``: the top-k
    classes of each image for a run directory, weights file or model name."""
    return Predictor.from_target(target, model=model, device=device).predict(images, topk)
