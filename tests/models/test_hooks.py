"""capture_outputs: what the named modules output while the block runs, and no hook left
behind afterwards, however the block ends."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from convnets.errors import ConfigError
from convnets.models.hooks import capture_outputs, capture_shapes


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(8, 3)))


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_latest_outputs_in_the_order_the_modules_first_ran():
    net, x = _net(), torch.randn(1, 1, 4, 4)
    with capture_outputs(net, ["2.1", "0", "2"]) as outputs:
        net(torch.zeros_like(x))
        y = net(x)
    assert list(outputs) == ["0", "2.1", "2"]
    assert torch.equal(outputs["2"], y) and torch.equal(outputs["2.1"], y)
    assert torch.equal(outputs["0"], net[0](x))
    assert _hooks_left(net) == 0


def test_record_sees_every_output_and_may_stop_the_forward_pass():
    net, x = _net(), torch.randn(2, 1, 4, 4)
    seen = []

    class Stop(Exception):
        pass

    def record(name, out):
        seen.append((name, tuple(out.shape)))
        if name == "1":
            raise Stop

    with capture_outputs(net, ["0", "1", "2"], record) as outputs:
        with pytest.raises(Stop):
            net(x)
    assert seen == [("0", (2, 2, 2, 2)), ("1", (2, 2, 2, 2))] and outputs == {}
    assert _hooks_left(net) == 0


def test_hooks_are_removed_when_the_block_fails_and_unknown_names_place_none():
    net = _net()
    with pytest.raises(RuntimeError):
        with capture_outputs(net, ["0", "2"]):
            net(torch.randn(1, 3, 4, 4))  # the wrong channel count
    assert _hooks_left(net) == 0
    with pytest.raises(ConfigError, match="no module 'nope' in Sequential"):
        with capture_outputs(net, ["0", "nope"]):
            pass
    assert _hooks_left(net) == 0


def test_shapes_are_those_of_the_first_call():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 2, 3), relu, nn.Flatten(), relu)  # one module run twice
    with capture_shapes(net, ["1", "2"]) as shapes:
        net(torch.randn(1, 1, 4, 4))
    assert shapes == {"1": (1, 2, 2, 2), "2": (1, 8)}
