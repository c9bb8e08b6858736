"""Collapsed channels and effective dimensionality on cases whose answer is known."""
import pytest
import torch
from torch import nn

from convnets.cli import main
from convnets.inspect.singularity import ActivationStats, analyze_singularities, channel_stats


def _stats(acts: torch.Tensor, threshold: float = 0.99):
    s = ActivationStats(acts.shape[1])
    s.update(acts)
    return channel_stats(s.covariance(), threshold)


def test_duplicate_and_scaled_channels_collapse_orthogonal_ones_do_not():
    torch.manual_seed(0)
    base = torch.randn(64, 6, 5, 5)
    acts = torch.cat([base, base[:, :1], -3 * base[:, 1:2] + 2.0], 1)  # 8 channels
    dead, collapsed, pairs, pr, dims99 = _stats(acts)
    # channel 6 duplicates 0; channel 7 is an affine copy of 1 (|correlation| 1).
    assert (dead, collapsed, pairs) == (0, 2, 28)
    assert dims99 <= 6
    dead, collapsed, pairs, pr, dims99 = _stats(base)
    assert (dead, collapsed) == (0, 0)
    assert pr > 5.5 and dims99 == 6  # six independent unit-variance channels


def test_participation_ratio_and_dims99_of_known_spectra():
    # Rank one: one direction carries all variance.
    v = torch.randn(2000, 1)
    dead, collapsed, _, pr, dims99 = _stats((v * torch.tensor([[1.0, 2.0, -0.5]]))[:, :, None, None])
    assert collapsed == 3 and dims99 == 1 and pr == pytest.approx(1.0, abs=1e-6)
    # Variances 4 and 1 on two exactly uncorrelated channels: PR = 25/17.
    a = torch.tensor([1.0, -1.0, 1.0, -1.0])
    b = torch.tensor([1.0, 1.0, -1.0, -1.0])
    acts = torch.stack([2 * a, b], 1)[:, :, None, None]
    _, collapsed, _, pr, dims99 = _stats(acts)
    assert collapsed == 0 and pr == pytest.approx(25 / 17) and dims99 == 2


def test_constant_channels_are_dead_not_collapsed():
    acts = torch.cat([torch.randn(50, 3, 2, 2), torch.zeros(50, 2, 2, 2), torch.ones(50, 1, 2, 2)], 1)
    dead, collapsed, pairs, _, _ = _stats(acts)
    assert (dead, collapsed, pairs) == (3, 0, 3)


def test_model_layers_report_a_conv_with_duplicated_filters():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight[4] = conv.weight[0]  # identical incoming weights: an overlap singularity
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(5, 4, 1))
    rows = analyze_singularities(model, [torch.randn(8, 3, 6, 6) for _ in range(2)])
    assert [(r.name, r.kind, r.channels) for r in rows] == [("0", "conv", 5), ("2", "conv", 4)]
    assert rows[0].collapsed_pairs == 1 and rows[1].collapsed_pairs == 0


def test_cli_prints_a_row_per_layer(capsys):
    assert main(["analyze", "singularity", "gunn15", "--data", "synthetic:4", "--batches", "1",
                 "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "features.1  gunn" in out and "features.7  gunn" in out and "stem" in out
    assert main(["analyze", "singularity", "gunn15", "--threshold", "2"]) == 2
