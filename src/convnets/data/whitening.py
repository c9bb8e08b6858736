"""NiN's input preprocessing: global contrast normalisation, then ZCA whitening fitted on
the training split (Lin et al. 2014, Sec. 4.2, doing what Goodfellow et al. 2013 did for
maxout networks; the settings are those of pylearn2's ``make_cifar10_gcn_whitened.py``).

- GCN (pylearn2's ``global_contrast_normalize`` with ``scale=55``): each image, as one
  vector, minus its own mean, scaled to Euclidean norm 55; an image of one colour
  becomes zero.
- ZCA (pylearn2's ``ZCA`` with ``filter_bias=0.1``): with ``m`` the mean and ``C`` the
  covariance (divided by N) of the GCN'd training images and ``C = E diag(d) E^T``,
  ``W = E diag(d + 0.1)^(-1/2) E^T``; an image ``x`` becomes ``(gcn(x) - m) W``, so the
  training images' mean becomes zero.

The fit is a deterministic function of the training images as the preset's evaluation
geometry gives them (resized to the input size, float in [0, 1], the model's channels),
computed in float64 in one pass. Applying it costs a D x D product per image (9.4
MFLOP for CIFAR's 3 x 32 x 32), done by the data loader's workers. A run keeps it in
``whitening.safetensors`` beside ``inference.json`` so that ``predict`` applies it
without the training data.
"""
from __future__ import annotations

import functools
from typing import Iterable

import torch
from torch import nn

from ..errors import RunDirError

__all__ = ["GCN_SCALE", "ZCA_BIAS", "WHITENING_FILE", "Whitening", "Whiten",
           "global_contrast_normalize", "whitening_for"]

GCN_SCALE = 55.0
ZCA_BIAS = 0.1
WHITENING_FILE = "whitening.safetensors"


def global_contrast_normalize(x: torch.Tensor, scale: float = GCN_SCALE) -> torch.Tensor:
    """Rows of ``x`` (one flattened image each) centred and scaled to norm ``scale``."""
    centred = x - x.mean(-1, keepdim=True)
    norm = centred.norm(dim=-1, keepdim=True)
    # pylearn2's min_divisor leaves a constant image at zero; centring in floating point
    # leaves it a rounding error from zero, which must not be scaled up to norm 55.
    constant = norm <= torch.clamp(1e-6 * x.norm(dim=-1, keepdim=True), min=1e-8)
    return torch.where(constant, torch.zeros_like(centred), centred * scale / norm.clamp_min(1e-12))


class Whitening:
    """A fitted GCN + ZCA: ``mean`` (D,) and ``matrix`` (D, D), float32, for images of
    ``input_size`` (D = C * H * W)."""

    def __init__(self, mean: torch.Tensor, matrix: torch.Tensor,
                 input_size: tuple[int, int, int]) -> None:
        d = input_size[0] * input_size[1] * input_size[2]
        if mean.shape != (d,) or matrix.shape != (d, d):
            raise ValueError(f"a whitening for {input_size} needs a mean of {d} values and a "
                             f"{d}x{d} matrix, got {tuple(mean.shape)} and {tuple(matrix.shape)}")
        self.mean, self.matrix = mean.float(), matrix.float()
        self.input_size = tuple(int(v) for v in input_size)

    @classmethod
    def fit(cls, images: torch.Tensor, chunk: int = 1024) -> "Whitening":
        """Fit on ``images`` (N, C, H, W), float in [0, 1]."""
        starts = range(0, len(images), chunk)
        return cls.fit_batches(images[start:start + chunk] for start in starts)

    @classmethod
    def fit_batches(cls, batches: Iterable[torch.Tensor]) -> "Whitening":
        """Fit on the images of ``batches`` (each (B, C, H, W), float in [0, 1]), read once:
        the sums of the GCN'd images and of their outer products, in float64."""
        n, size, total, products = 0, None, None, None
        for batch in batches:
            part = global_contrast_normalize(batch.reshape(len(batch), -1).double())
            if total is None:
                size = tuple(batch.shape[1:])
                total = torch.zeros(part.shape[1], dtype=torch.float64)
                products = torch.zeros(part.shape[1], part.shape[1], dtype=torch.float64)
            n += len(part)
            total += part.sum(0)
            products += part.T @ part
        if n < 2:
            raise ValueError(f"a whitening needs at least 2 training images, got {n}")
        mean = total / n
        cov = products / n - torch.outer(mean, mean)
        eigval, eigvec = torch.linalg.eigh(cov)
        matrix = (eigvec * (eigval.clamp_min(0) + ZCA_BIAS).rsqrt()) @ eigvec.T
        return cls(mean, matrix, size)

    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` or a batch, float in [0, 1] -> whitened, same shape."""
        flat = img.reshape(*img.shape[:-3], -1).float()
        out = (global_contrast_normalize(flat) - self.mean) @ self.matrix
        return out.reshape(img.shape).to(img.dtype)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Whitening) and self.input_size == other.input_size
                and torch.equal(self.mean, other.mean) and torch.equal(self.matrix, other.matrix))

    def __hash__(self) -> int:
        return hash((self.input_size, float(self.mean.sum())))

    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        from ..core import replacing

        with replacing(path) as tmp:
            save_file({"mean": self.mean.contiguous(), "matrix": self.matrix.contiguous()}, tmp,
                      metadata={"input_size": ",".join(map(str, self.input_size))})

    @classmethod
    def load(cls, path: str) -> "Whitening":
        """Read back what :meth:`save` wrote; a malformed file is a RunDirError."""
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt") as f:
                size = tuple(int(v) for v in (f.metadata() or {})["input_size"].split(","))
                return cls(f.get_tensor("mean"), f.get_tensor("matrix"), size)
        except FileNotFoundError:
            raise RunDirError(f"{path} is missing: the run's preset whitens its inputs with "
                              "the whitening fitted when it was trained") from None
        except Exception as err:  # safetensors' and our own checks' errors alike
            raise RunDirError(f"{path} is not a whitening written by convnets ({err})") from None


class Whiten(nn.Module):
    """A pipeline step: the fitted whitening applied to an image."""

    def __init__(self, whitening: Whitening) -> None:
        super().__init__()
        self.whitening = whitening

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.whitening.apply(img)

    def extra_repr(self) -> str:
        return f"input_size={self.whitening.input_size}"


def whitening_for(preset: str | None, spec: str | None, input_size: tuple[int, int, int],
                  stored: Whitening | None = None) -> Whitening | None:
    """The whitening a ``preset`` needs for data ``spec`` at ``input_size``: ``stored`` (a
    run's own fit, what its network was trained with) where given, else fitted on the
    spec's training split (once per process); None for presets that do not whiten."""
    from .transforms import PRESETS

    row = PRESETS.get(preset) if preset is not None else None
    if row is None or not row.whitens:
        return None
    if stored is not None:
        return stored
    return _fitted(spec, tuple(int(v) for v in input_size))


@functools.lru_cache(maxsize=4)
def _fitted(spec: str | None, input_size: tuple[int, int, int]) -> Whitening:
    from .datasets import open_dataset

    # "none" is the whitening presets' evaluation geometry (a resize to the input size),
    # and mean 0, std 1 leave the values in [0, 1], as GCN takes them.
    train = open_dataset(spec, "train", input_size=input_size, train_transform=False,
                         preset="none", normalisation=((0.0,), (1.0,)))
    return Whitening.fit_batches(_batches(train, 1024))


def _batches(dataset, size: int) -> Iterable[torch.Tensor]:
    for start in range(0, len(dataset), size):
        yield torch.stack([dataset[i][0] for i in range(start, min(start + size, len(dataset)))])
