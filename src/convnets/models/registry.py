"""The model registry: one decorator to join, one function to build.

Model files register their public builders with ``@register_model(...)``; the
metadata given there (paper, year, data conventions, published figures and where they
come from, the torchvision/timm model it equals) is data about the architecture and is
kept beside the builder, never inside the module; benchmarks, interoperability tests
and the weights-only inference spec read it from :class:`ModelInfo`.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Callable

from torch import nn

from ..errors import ConfigError, UnknownModelError, WeightsError
from .conventions import CIFAR10, IMAGENET, MNIST, DataConventions
from .weights import load_weights, read_state_dict

__all__ = [
    "ModelInfo",
    "DataConventions",
    "IMAGENET",
    "CIFAR10",
    "MNIST",
    "TORCHVISION_WEIGHTS",
    "UnknownModelError",
    "WeightsError",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "load_weights",
    "read_state_dict",
    "builder_options",
]


@dataclass(frozen=True)
class ModelInfo:
    """What the literature says about a registered model.

    ``top1_err``/``top5_err`` are the published single-model, single-crop error rates in
    percent on ``dataset`` (None where the paper gives none); ``params`` is the
    published parameter count for ``num_classes`` outputs; ``figures`` cites where these
    come from (a table of ``paper``, or the released weights they were measured with).

    ``torchvision`` names the torchvision model this one equals layer for layer, with
    the same state-dict keys, so that torchvision's checkpoints load as they are;
    ``timm`` names timm's model of the same architecture (the same parameters and
    computation). Where torchvision has none, timm's checkpoints load (``weights_from``).

    ``eval_preset``, ``mean`` and ``std`` are how the model's images are evaluated
    (:mod:`convnets.models.conventions`). ``twin`` names a GUNN's simultaneously updated
    twin (SUNN, the same parameters applied at once: the paper's baseline), the network
    it is measured against. ``protocol`` names the test protocol the paper reports its
    figures with (:mod:`convnets.engine.protocols`; ``convnets eval --protocol``), which
    need not be that of ``top1_err`` (torchvision's weights are measured on one centre
    crop): "center" for a single centre crop, the CIFAR papers' whole 32x32 image.
    """

    name: str
    family: str
    paper: str
    year: int
    input_size: tuple[int, int, int]
    num_classes: int
    dataset: str
    eval_preset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    top1_err: float | None = None
    top5_err: float | None = None
    params: int | None = None
    figures: str = ""
    torchvision: str | None = None
    timm: str | None = None
    twin: str | None = None
    protocol: str = "center"
    notes: str = ""

    @property
    def weights_from(self) -> tuple[str, str] | None:
        """(library, model name) whose checkpoints load into this model unchanged."""
        if self.torchvision:
            return ("torchvision", self.torchvision)
        return ("timm", self.timm) if self.timm else None

    def as_dict(self) -> dict:
        return asdict(self)


# The ``figures`` of the entries whose errors were measured with torchvision's weights.
TORCHVISION_WEIGHTS = ("torchvision's IMAGENET1K_V1 weights (single centre crop); params as "
                       "torchvision")

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_INFO: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    year: int,
    data: DataConventions | None = None,
    input_size: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    dataset: str | None = None,
    top1_err: float | None = None,
    top5_err: float | None = None,
    params: int | None = None,
    figures: str = "",
    torchvision: str | None = None,
    timm: str | None = None,
    twin: str | None = None,
    protocol: str = "center",
    notes: str = "",
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name (or ``name``); duplicates are refused.
    ``data`` gives the dataset, head size, input size and evaluation conventions;
    ``input_size``, ``num_classes`` and ``dataset`` replace its values (without ``data``
    all three are needed, and a model of a dataset other than CIFAR is evaluated as
    ImageNet's are)."""
    data = _conventions(data, input_size, num_classes, dataset)

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _BUILDERS:
            raise ValueError(f"model {key!r} is already registered")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ValueError(f"model names are lower case letters, digits and underscores: {key!r}")
        _BUILDERS[key] = builder
        _INFO[key] = ModelInfo(
            name=key, family=family, paper=paper, year=year, input_size=tuple(data.input_size),
            num_classes=data.num_classes, dataset=data.dataset, eval_preset=data.eval_preset,
            mean=tuple(data.mean), std=tuple(data.std), top1_err=top1_err, top5_err=top5_err,
            params=params, figures=figures, torchvision=torchvision, timm=timm, twin=twin,
            protocol=protocol, notes=notes,
        )
        return builder

    return decorate


def _conventions(data: DataConventions | None, input_size: tuple[int, int, int] | None,
                 num_classes: int | None, dataset: str | None) -> DataConventions:
    if data is None:
        if input_size is None or num_classes is None or dataset is None:
            raise TypeError("register_model needs data=, or input_size, num_classes and dataset")
        data = CIFAR10 if dataset.startswith("cifar") else IMAGENET
    given = {"input_size": tuple(input_size) if input_size is not None else None,
             "num_classes": num_classes, "dataset": dataset}
    return replace(data, **{k: v for k, v in given.items() if v is not None})


def _lookup(name: str) -> str:
    _ensure_registered()
    key = name.strip().lower()
    # Forgive the papers' spellings: "GUNN-18" -> gunn18, "wide-gunn18" -> wide_gunn18.
    for candidate in (key, key.replace("-", "_"), key.replace("-", "")):
        if candidate in _BUILDERS:
            return candidate
    close = difflib.get_close_matches(key, list(_BUILDERS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `convnets models` lists them"
    raise UnknownModelError(f"unknown model {name!r}{hint}")


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell glob or a substring."""
    _ensure_registered()
    names = sorted(_BUILDERS)
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, glob.lower())]
    return names


def model_info(name: str) -> ModelInfo:
    """The published facts about a model (see :class:`ModelInfo`)."""
    return _INFO[_lookup(name)]


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    **options,
) -> nn.Module:
    """Build a registered model.

    ``num_classes`` defaults to the model's published head; ``weights`` is a weights
    file (safetensors, or a PyTorch state dict read with ``weights_only=True``), e.g.
    one saved by torchvision or timm, checked as :mod:`convnets.models.weights` says.
    Other keyword options go to the model's builder.
    """
    key = _lookup(name)
    info = _INFO[key]
    if num_classes is None:
        num_classes = info.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError.of("num_classes", f"must be a positive whole number, got {num_classes!r}")
    builder = _BUILDERS[key]
    accepted = builder_options(key)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
        raise ConfigError(f"{key} has no option {unknown[0]!r}; {takes}")
    model = builder(num_classes=num_classes, **options)
    model.default_input_size = info.input_size
    if weights is not None:
        load_weights(model, weights)
    return model


def builder_options(name: str) -> list[str]:
    """The options ``create_model(name, **options)`` accepts, from the builder's signature
    (keyword-only parameters besides ``num_classes``)."""
    params = inspect.signature(_BUILDERS[_lookup(name)]).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "num_classes"]


_REGISTERED = False


def _ensure_registered() -> None:
    # Model files join the registry when imported; import them on first use so that
    # `from convnets.models.registry import ...` alone sees the whole zoo.
    global _REGISTERED
    if not _REGISTERED:
        _REGISTERED = True
        import convnets.models  # noqa: F401
