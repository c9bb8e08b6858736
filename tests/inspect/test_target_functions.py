"""What `convnets analyze` and `convnets visualize` do, called from Python as a notebook
would: the result comes back instead of being printed."""
import os

import pytest

from convnets.errors import ConfigError
from convnets.inspect.singularity import analyze_target
from convnets.inspect.visualize import visualize


def test_analyze_target_returns_rows_and_what_they_were_measured_on():
    res = analyze_target("gunn15", data="synthetic:4", batches=3, batch_size=4)
    assert (res.model, res.weights, res.data, res.threshold) == ("gunn15", None, "synthetic:4", 0.99)
    assert res.batches == 1  # four images make one batch of four
    assert {"features.1", "features.7"} <= {r.name for r in res.rows}


@pytest.mark.parametrize("kw, option", [(dict(batches=0), "batches"),
                                        (dict(batch_size=0), "batch_size"),
                                        (dict(threshold=1.0), "threshold")])
def test_analyze_target_refuses_bad_settings(kw, option):
    with pytest.raises(ConfigError) as info:
        analyze_target("gunn15", **kw)
    assert info.value.option == option


def test_visualize_returns_the_path_of_the_png(tmp_path):
    notes = []
    path = visualize("filters", "resnet20", out=str(tmp_path), log=notes.append)
    assert path == str(tmp_path / "filters-resnet20.png") and os.path.isfile(path)
    assert notes == ["note: resnet20 has no weights given; showing its untrained initialisation"]
