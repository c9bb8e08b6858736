"""The figures as a person meets them: a PNG of a readable size whose title, panel titles,
class names and colour-bar labels say what is shown."""
import os

import numpy as np
import pytest
import torch
from matplotlib.text import Text
from PIL import Image

from convnets.inspect.visualize import (DreamPriors, dream, first_layer_filters, layer_activations,
                                        occlusion, plot_activations, plot_dream, plot_filters,
                                        plot_occlusion, plot_projection, project_back, save_figure)

from test_visualize import TinyNet

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")

CLASSES = ["cat", "dog", "fox", "owl", "yak"]
NORM = dict(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), classes=CLASSES)


def texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text) if t.get_text())


def png(fig, tmp_path, name: str) -> tuple[int, int]:
    path = save_figure(fig, tmp_path / "sub" / f"{name}.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.fixture
def net():
    return TinyNet().eval()


@pytest.fixture
def x():
    return torch.randn(3, 12, 12)


def test_filters_figure(net, tmp_path):
    fig = plot_filters(first_layer_filters(net), title="tiny")
    assert png(fig, tmp_path, "filters") == (800, 320)  # 8 x 3.2 inches at 100 dpi
    text = texts(fig)
    assert "tiny: first-layer filters 'conv1' (4, 3x3)" in text
    assert "mid-grey = 0" in text and all(str(i) in text.split("\n") for i in range(4))


def test_filters_of_a_grey_network_have_a_colour_bar(tmp_path):
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5))
    fig = plot_filters(first_layer_filters(conv))
    assert "weight" in texts(fig) and "mean over 1 input channel" in texts(fig)
    assert png(fig, tmp_path, "grey")[0] >= 800


def test_activations_figure(net, x, tmp_path):
    a = layer_activations(net, x, "conv2")
    fig = plot_activations(a, x, title="tiny on x.png", **NORM)
    w, h = png(fig, tmp_path, "activations")
    assert w >= 1000 and h >= 450
    text = texts(fig)
    top = CLASSES[int(np.argmax(a.probs))]
    assert f"predicted '{top}'" in text
    assert "tiny on x.png: feature maps of 'conv2' (all 6, 6x6" in text
    assert "activation" in text.split("\n")
    strongest = int(np.argmax(a.maps.reshape(6, -1).mean(1)))
    assert f"#{strongest}" in text


def test_occlusion_figure(net, x, tmp_path):
    o = occlusion(net, x, patch=4, stride=2, target="fox", classes=CLASSES)
    fig = plot_occlusion(o, x, title="tiny", **NORM)
    assert png(fig, tmp_path, "occlusion") == (1800, 560)
    text = texts(fig)
    assert "tiny: occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7)" in text
    assert "(a) p('fox') with the square centred here" in text and "probability of 'fox'" in text
    assert "grey square 4x4 px, moved in steps of 2 px" in text
    assert f"(c) 'conv2' feature map {o.channel}" in text and "sum of the map" in text
    # the legend names every class the class map shows, with its share of the positions
    for cls in np.unique(o.top_class):
        assert f"{CLASSES[cls]} (" in text


def test_projection_figure(net, x, tmp_path):
    p = project_back(net, x, layer="conv2", top=2)
    fig = plot_projection(p, x, title="tiny", **NORM)
    assert png(fig, tmp_path, "deconv") == (1700, 500)
    text = texts(fig)
    assert f"projected back to pixels: 'conv2', feature map {p.channel}, its 2 strongest" in text
    for title in ("deconvnet (Zeiler & Fergus)", "guided backpropagation",
                  "saliency: |gradient|, max over channels", "the kept activations"):
        assert title in text
    p = project_back(net, x, target="dog", classes=CLASSES)
    assert "the score of class 'dog'" in texts(plot_projection(p, x, **NORM))


def test_dream_figure(net, tmp_path):
    d = dream(net, (3, 12, 12), mean=NORM["mean"], std=NORM["std"], target="owl", classes=CLASSES,
              priors=DreamPriors(steps=3, octaves=1, copies=1))
    fig = plot_dream(d, title="tiny", **NORM)
    assert png(fig, tmp_path, "dream") == (1700, 480)
    text = texts(fig)
    assert f"tiny: the network's image of class 'owl': p = {100 * d.probs[3]:.1f}%" in text
    assert "owl" in text.split("\n") and "class score (logit)" in text and "step" in text
    assert "probability of the dream, %" in text


def test_save_figure_replaces_a_file_whole(net, tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    save_figure(plot_filters(first_layer_filters(net)), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any file the user writes
