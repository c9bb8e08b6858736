"""The presets as a table: one row is a whole preset."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from convnets.data import build_transform, list_presets
from convnets.data.transforms import PRESETS, Preset, Stages


def test_a_new_row_is_a_preset_for_both_pipelines(monkeypatch):
    row = Preset("flip-only", "flip (train); resize (eval)", "a test",
                 train=Stages(lambda h, w: [v2.Resize((h, w)), v2.RandomHorizontalFlip(p=1.0)]),
                 eval=Stages(lambda h, w: [v2.Resize((h, w))]))
    monkeypatch.setitem(PRESETS, row.name, row)
    assert list_presets()["flip-only"] == "flip (train); resize (eval)"
    image = torch.arange(16, dtype=torch.uint8).view(1, 4, 4).expand(3, 4, 4).clone()
    kw = dict(input_size=(3, 4, 4), mean=(0.0,), std=(1.0,))
    train = build_transform("flip-only", train=True, **kw)(image)
    evaluated = build_transform("flip-only", train=False, **kw)(image)
    torch.testing.assert_close(evaluated, image.float() / 255)
    torch.testing.assert_close(train, evaluated.flip(-1))


def test_every_paper_preset_names_its_source():
    assert list(PRESETS) == list(list_presets())
    assert all(p.source for name, p in PRESETS.items() if name != "none")
