"""What a trained network needs to be asked about a new image: ``inference.json``.

A run directory travels: ``predict``, ``visualize`` and ``transfer`` work on a machine
that has the run and no training data. ``fit`` therefore writes, when a run starts,
``inference.json`` beside ``config.json``::

    {"format": 1, "model": "resnet20", "num_classes": 10, "classes": ["0", ..., "9"],
     "input_size": [3, 32, 32], "mean": [0.33, 0.33, 0.33], "std": [0.42, 0.42, 0.42],
     "preset": "digits", "data": "digits"}

``mean``/``std`` are per channel of the model's input (the data's statistics adapted to
it as the training transform did: grey replicated, RGB to luma). ``preset`` names the
evaluation pipeline, which :func:`convnets.data.build_transform` derives from the
preset, the input size and the normalisation alone, all recorded here: for ``digits``
a bilinear resize to the input size, for ``cifar`` a resize, for ``imagenet`` the
shorter side to 256/224 of the input and a central crop. ``data`` is the training data
spec, for the record only. A preset that whitens its inputs (``nin-cifar``: GCN and ZCA
fitted on the training split, :mod:`convnets.data.whitening`) adds
``"whitening": "whitening.safetensors"``, the file beside it that holds the fit. The
file is validated whenever it is read: anything malformed is a one-line
:class:`~convnets.errors.RunDirError`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Callable

from ..core import atomic_write, read_json
from ..errors import RunDirError

if TYPE_CHECKING:
    from ..data.whitening import Whitening

__all__ = ["INFERENCE_FILE", "InferenceSpec", "save_inference_spec", "load_inference_spec",
           "spec_from_dataset", "spec_without_run"]

INFERENCE_FILE = "inference.json"
FORMAT = 1


@dataclass(frozen=True)
class InferenceSpec:
    """Class names, input size, normalisation and evaluation preset of a network, and the
    fitted whitening of a preset that whitens (None for every other)."""

    model: str
    classes: tuple[str, ...]
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preset: str
    data: str | None = None
    whitening: Whitening | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def transform(self) -> Callable:
        """The evaluation pipeline: a PIL image or (C, H, W) tensor in, the model's input out."""
        from ..data import build_transform

        return build_transform(self.preset, train=False, input_size=self.input_size,
                               mean=self.mean, std=self.std, whitening=self.whitening)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; the whitening is named by its file, which is written beside."""
        from ..data.whitening import WHITENING_FILE

        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "whitening"}
        out = {"format": FORMAT, "model": d.pop("model"), "num_classes": self.num_classes,
               **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}
        if self.whitening is not None:
            out["whitening"] = WHITENING_FILE
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "InferenceSpec":
        """Validate ``raw`` (parsed JSON); a RunDirError names ``where`` and the first fault."""
        from ..data import list_presets
        from ..data.whitening import WHITENING_FILE
        from ..errors import UnknownModelError
        from ..models import model_info

        def bad(what: str) -> RunDirError:
            return RunDirError(f"{where}: {what}")

        if not isinstance(raw, dict):
            raise bad("does not hold a JSON object")
        if raw.get("format") != FORMAT:
            raise bad(f"format {raw.get('format')!r} is not {FORMAT} (written by another convnets?)")
        missing = [k for k in ("model", "num_classes", "classes", "input_size", "mean", "std",
                               "preset") if k not in raw]
        if missing:
            raise bad(f"lacks {', '.join(missing)}")
        try:
            model = model_info(raw["model"]).name if isinstance(raw["model"], str) else None
        except UnknownModelError:
            model = None
        if model is None:
            raise bad(f"model {raw['model']!r} is not a registered model")
        classes, n = raw["classes"], raw["num_classes"]
        if not _whole(n) or n < 1:
            raise bad(f"num_classes must be a positive whole number, got {n!r}")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise bad("classes must be a list of names")
        if len(classes) != n:
            raise bad(f"holds {len(classes)} class names for num_classes {n}")
        size = raw["input_size"]
        if (not isinstance(size, list) or len(size) != 3 or not all(_whole(v) for v in size)
                or size[0] not in (1, 3) or min(size) < 1):
            raise bad(f"input_size must be [C, H, W] with C 1 or 3, got {size!r}")
        for key in ("mean", "std"):
            v = raw[key]
            if (not isinstance(v, list) or len(v) != size[0]
                    or not all(_number(x) for x in v)):
                raise bad(f"{key} must be {size[0]} finite numbers (one per input channel), "
                          f"got {v!r}")
        if min(raw["std"]) <= 0:
            raise bad(f"std must be positive, got {raw['std']!r}")
        if raw["preset"] not in list_presets():
            raise bad(f"preset {raw['preset']!r} is not one of {', '.join(list_presets())}")
        data = raw.get("data")
        if data is not None and not isinstance(data, str):
            raise bad(f"data must be a dataset spec or null, got {data!r}")
        if raw.get("whitening", WHITENING_FILE) != WHITENING_FILE:
            raise bad(f"whitening must name {WHITENING_FILE}, got {raw['whitening']!r}")
        return cls(model, tuple(classes), tuple(size), tuple(float(x) for x in raw["mean"]),
                   tuple(float(x) for x in raw["std"]), raw["preset"], data)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def save_inference_spec(run_dir: str, spec: InferenceSpec) -> None:
    """``inference.json`` in ``run_dir``, and the whitening file it names (written first, so
    that the JSON never names a file that is not there)."""
    from ..data.whitening import WHITENING_FILE

    if spec.whitening is not None:
        spec.whitening.save(os.path.join(run_dir, WHITENING_FILE))
    text = json.dumps(spec.to_dict(), indent=2) + "\n"
    atomic_write(os.path.join(run_dir, INFERENCE_FILE), lambda f: f.write(text.encode()))


def load_inference_spec(path: str) -> InferenceSpec:
    """The spec in ``path``, with the whitening from the file beside it that it names."""
    from ..data.whitening import Whitening

    raw = read_json(path, missing=f"no {INFERENCE_FILE}: {path}", error=RunDirError)
    spec = InferenceSpec.from_dict(raw, path)
    if "whitening" not in raw:
        return spec
    whitening = Whitening.load(os.path.join(os.path.dirname(path), raw["whitening"]))
    if whitening.input_size != spec.input_size:
        raise RunDirError(f"{path}: its whitening is fitted at {whitening.input_size}, the "
                          f"network takes {spec.input_size}")
    return replace(spec, whitening=whitening)


def stored_whitening(run_dir: str | None):
    """The whitening a run was trained with (``nin-cifar``), read from its directory; None
    for a run that does not whiten, or no run."""
    path = os.path.join(run_dir, INFERENCE_FILE) if run_dir else None
    if path is None or not os.path.isfile(path):
        return None
    return load_inference_spec(path).whitening


def spec_from_dataset(model: str, dataset: Any, input_size: tuple[int, int, int],
                      data: str | None) -> InferenceSpec | None:
    """The spec of a network trained on ``dataset`` (a
    :class:`~convnets.data.protocol.LabelledDataset`, as open_dataset returns it, which
    records its preset and normalisation); None for a dataset that does not say them
    (one made in Python with a transform of its own)."""
    from ..data.protocol import LabelledDataset
    from ..data.transforms import match_stats
    from ..data.whitening import whitening_for

    if not isinstance(dataset, LabelledDataset) or dataset.preset is None or dataset.mean is None:
        return None
    mean, std = match_stats(dataset.mean, dataset.std, input_size[0])
    classes = tuple(dataset.classes)
    # the fit open_dataset gave the dataset (kept for the process; a deterministic
    # function of the training split in any case)
    whitening = whitening_for(dataset.preset, data, input_size)
    return InferenceSpec(model, classes, tuple(input_size), tuple(mean), tuple(std),
                         dataset.preset, data, whitening)


def spec_without_run(model: str, num_classes: int,
                     input_size: tuple[int, int, int] | None = None) -> InferenceSpec:
    """For weights that come without a run (torchvision's, timm's, or a bare model name):
    the evaluation conventions the model is registered with (``ModelInfo.eval_preset``,
    ``mean``, ``std``: for ImageNet models the ImageNet statistics and the ``imagenet``
    evaluation, resize to 256/224 of the input and centre crop, as torchvision and timm
    publish them; for CIFAR models the CIFAR-10 statistics and ``cifar``), and the 1,000
    ImageNet names for a 1,000-class head. Heads of other sizes are named by their
    indices."""
    from ..data.transforms import match_stats
    from ..models import model_info
    from ..models.classes import imagenet_classes

    info = model_info(model)
    size = tuple(input_size or info.input_size)
    mean, std = match_stats(info.mean, info.std, size[0])
    classes = imagenet_classes() if num_classes == 1000 else [str(k) for k in range(num_classes)]
    return InferenceSpec(info.name, tuple(classes), size, tuple(mean), tuple(std),
                         info.eval_preset, None)
