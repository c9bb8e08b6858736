"""`convnets visualize`: each method writes a PNG and prints its path; every mistake a user
can make is one line and exit status 2."""
import os

import numpy as np
import pytest
from PIL import Image

from convnets.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A digit-like picture: a bright bar on black."""
    pixels = np.zeros((24, 24), dtype=np.uint8)
    pixels[4:20, 10:14] = 255
    path = tmp_path_factory.mktemp("images") / "bar.png"
    Image.fromarray(pixels).save(path)
    return str(path)


def _png(path: str) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.mark.parametrize("argv,name", [
    (["filters"], "filters-resnet20.png"),
    (["activations", "IMAGE", "--layer", "layer1"], "activations-resnet20-bar-layer1.png"),
    (["occlusion", "IMAGE", "--patch", "3", "--stride", "2", "--class", "2"],
     "occlusion-resnet20-bar-class2.png"),
    (["deconv", "IMAGE", "--layer", "layer2", "--top", "2"], "deconv-resnet20-bar-layer2.png"),
    (["dream", "--class", "4", "--steps", "2", "--octaves", "2"], "dream-resnet20-class4.png"),
    (["dream", "--layer", "layer3", "--channel", "5", "--steps", "2", "--octaves", "1"],
     "dream-resnet20-layer3-map5.png"),
])
def test_each_method_writes_a_png_into_the_run_and_prints_its_path(digits04_run, image, capsys,
                                                                   argv, name):
    method, *rest = argv
    code, out, err = run(capsys, "visualize", method, digits04_run,
                         *[image if a == "IMAGE" else a for a in rest])
    assert code == 0, err
    path = os.path.join(digits04_run, "visualize", name)
    assert out.strip() == path
    width, height = _png(path)
    assert width >= 800 and height >= 300


def test_a_model_name_and_an_out_folder(image, tmp_path, capsys):
    code, out, err = run(capsys, "visualize", "occlusion", "resnet20", image, "--out", tmp_path,
                         "--stride", "8")
    assert code == 0, err
    assert "no weights given" in err
    assert out.strip() == str(tmp_path / "occlusion-resnet20-bar.png")
    assert _png(out.strip()) == (1800, 560)


@pytest.mark.parametrize("argv,message", [
    (["activations", "RUN", "IMAGE", "--layer", "layer9"],
     "no layer 'layer9' in ResNet; layers: conv1, bn1, relu, maxpool, layer1, layer1.0"),
    (["activations", "RUN", "IMAGE", "--layer", "fc"], "layer 'fc' outputs (1, 5), not feature maps"),
    (["occlusion", "RUN"], "occlusion looks at an image: give IMAGE after the TARGET"),
    (["filters", "RUN", "IMAGE"], "filters shows the first layer's weights; it takes no IMAGE"),
    (["dream", "RUN"], "dream of a class or of a layer: give --class C or --layer NAME"),
    (["dream", "RUN", "--class", "1", "--layer", "layer1"], "give --class C or --layer NAME"),
    (["deconv", "RUN", "IMAGE", "--channel", "1"], "--channel chooses the feature map a dream"),
    (["deconv", "RUN", "IMAGE", "--class", "7"], "class index 7 is out of range: the model has 5"),
    (["deconv", "RUN", "IMAGE", "--class", "seven"], "unknown class 'seven'"),
    (["deconv", "RUN", "IMAGE", "--layer", "layer1", "--class", "1"], "not both"),
    (["deconv", "RUN", "IMAGE", "--layer", "layer1", "--top", "0"], "top must be between 1 and 64"),
    (["occlusion", "RUN", "IMAGE", "--patch", "0"], "patch must be between 1 and 8"),
    (["activations", "RUN", "IMAGE", "--max-maps", "0"], "--max-maps must be at least 1"),
    (["occlusion", "RUN", "IMAGE", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["dream", "RUN", "--class", "1", "--steps", "0"], "steps must be at least 1"),
    (["dream", "RUN", "--layer", "layer1", "--channel", "99"], "channel 99 does not exist"),
    (["occlusion", "RUN", "no/such.png"], "no/such.png: no such file"),
    (["occlusion", "no/such/run", "IMAGE"], "no run directory or weights file no/such/run"),
    (["paint", "RUN"], "invalid choice: 'paint'"),
])
def test_user_errors_are_one_line(digits04_run, image, capsys, argv, message):
    argv = [digits04_run if a == "RUN" else image if a == "IMAGE" else a for a in argv]
    code, out, err = run(capsys, "visualize", *argv)
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_gunn_layer_that_never_runs_and_a_network_without_relu(image, tmp_path, capsys):
    code, _, err = run(capsys, "visualize", "activations", "gunn15", image, "--out", tmp_path,
                       "--layer", "features.1.units.0")
    assert code == 2
    assert ("layer 'features.1.units.0' never runs as a module in GunnNet; 'features.1' computes "
            "it inside its own forward; choose a layer that does, e.g. 'features.1'") in err
    code, _, err = run(capsys, "visualize", "deconv", "lenet5", image, "--out", tmp_path)
    assert code == 2 and "LeNet5 has no ReLU" in err and len(err.strip().splitlines()) == 2
