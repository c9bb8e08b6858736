"""`convnets serve`'s own mistakes: one line, exit status 2."""
import socket

import pytest

from convnets.cli import main


def _one_line_exit_2(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("convnets: error: ")
    for w in words:
        assert w in err


def test_port_in_use(capsys, served_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _one_line_exit_2(capsys, ["serve", served_run, "--port", str(port)], "in use", str(port))


@pytest.mark.parametrize("target, words", [("no/such/run", ["no run directory"]),
                                           ("no_such_model", ["no_such_model"])])
def test_bad_target(capsys, target, words):
    _one_line_exit_2(capsys, ["serve", target, "--port", "0"], *words)


def test_run_dir_without_config(capsys, tmp_path):
    _one_line_exit_2(capsys, ["serve", str(tmp_path), "--port", "0"], "not a run directory")


@pytest.mark.parametrize("argv, words", [(["--port", "70000"], ["--port", "65535"]),
                                         (["--max-batch", "0"], ["--max-batch"]),
                                         (["--max-wait-ms", "-1"], ["--max-wait-ms"]),
                                         (["--max-wait-ms", "inf"], ["--max-wait-ms"]),
                                         (["--workers", "0"], ["--workers"]),
                                         (["--max-bytes", "0"], ["--max-bytes"]),
                                         (["--host", "no.such.host.invalid"], ["--host"])])
def test_bad_options(capsys, argv, words):
    _one_line_exit_2(capsys, ["serve", "resnet20", *argv], *words)


@pytest.mark.parametrize("options", [dict(max_batch=0), dict(workers=0), dict(max_bytes=-1),
                                     dict(max_pixels=0), dict(max_batch=2.5),
                                     dict(max_wait_ms=-1.0), dict(max_wait_ms=float("nan"))])
def test_create_app_refuses_bad_settings(predictor, options):
    from convnets.errors import ConfigError
    from convnets.serve import create_app

    name = next(iter(options))
    with pytest.raises(ConfigError, match=name):
        create_app(predictor, **options)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    from convnets.engine.inference_spec import spec_without_run
    from convnets.inference.export import write_onnx
    from convnets.models import create_model

    path = str(tmp_path_factory.mktemp("onnx") / "lenet5.onnx")
    write_onnx([create_model("lenet5", num_classes=10)], spec_without_run("lenet5", 10, (1, 32, 32)),
               path)
    return path


def test_create_app_refuses_an_onnx_predictor_saying_what_it_serves(onnx_file):
    from convnets.errors import ConvnetsError
    from convnets.inference.export import OnnxPredictor
    from convnets.serve import create_app

    with pytest.raises(ConvnetsError, match="PyTorch networks only") as info:
        create_app(OnnxPredictor(onnx_file))
    text = str(info.value)
    assert "\n" not in text and "ONNX Runtime" in text and "lenet5.onnx" in text
    assert "run directory" in text  # what it takes instead


def test_serve_refuses_an_onnx_file_in_one_line(capsys, onnx_file):
    _one_line_exit_2(capsys, ["serve", onnx_file, "--port", "0"], "PyTorch networks only",
                     "ONNX Runtime")
