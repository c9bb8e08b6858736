"""ServeSettings: every serve option defined once, checked once, and enough for a command
line to make its flags from."""
import argparse
from dataclasses import fields

import pytest

from convnets.errors import ConfigError
from convnets.serve import ServeSettings, bind, create_app, serve_options


def test_the_defaults():
    s = ServeSettings()
    assert (s.host, s.port, s.log_level) == ("127.0.0.1", 8000, "info")
    assert (s.max_batch, s.max_wait_ms, s.workers) == (32, 10.0, 2)
    assert (s.max_bytes, s.max_pixels) == (10_000_000, 25_000_000)


@pytest.mark.parametrize("changes, words", [
    (dict(port=70000), ["port", "65535"]), (dict(port=-1), ["port"]), (dict(port="80"), ["port"]),
    (dict(host=""), ["host"]), (dict(log_level="loud"), ["log_level", "debug, info"]),
    (dict(max_batch=True), ["max_batch"]), (dict(max_wait_ms=float("inf")), ["max_wait_ms"]),
    (dict(max_pixels=0), ["max_pixels", "at least 1"]), (dict(workers=1.0), ["workers"])])
def test_each_bad_value_names_its_field(changes, words):
    with pytest.raises(ConfigError) as info:
        ServeSettings(**changes)
    assert info.value.option == next(iter(changes))
    for w in words:
        assert w in str(info.value)


def test_replace_checks_and_refuses_unknown_names():
    s = ServeSettings().replace(max_batch=4)
    assert s.max_batch == 4 and s.workers == 2
    with pytest.raises(ConfigError, match="max_batch"):
        s.replace(max_batch=0)
    with pytest.raises(ConfigError, match="unknown serve option 'max_batches'"):
        s.replace(max_batches=4)


def test_a_command_line_made_from_serve_options_gives_the_settings():
    """The call a CLI makes: one flag per field, its default, type, choices and help."""
    parser = argparse.ArgumentParser()
    for f, opt, kind in serve_options():
        parser.add_argument(opt.flag, dest=f.name, type=kind, default=f.default,
                            choices=opt.choices, help=opt.help)
    assert [f.name for f, _, _ in serve_options()] == [f.name for f in fields(ServeSettings)]
    args = parser.parse_args(["--max-batch", "4", "--port", "0", "--log-level", "warning"])
    s = ServeSettings(**{f.name: getattr(args, f.name) for f, _, _ in serve_options()})
    assert (s.max_batch, s.port, s.log_level, s.max_wait_ms) == (4, 0, "warning", 10.0)
    assert all(opt.help and opt.flag == "--" + f.name.replace("_", "-")
               for f, opt, _ in serve_options())


def test_create_app_takes_settings_and_options_over_them(predictor):
    app = create_app(predictor, ServeSettings(max_batch=4), max_wait_ms=50)
    used = app.state.served.settings
    assert (used.max_batch, used.max_wait_ms, used.workers) == (4, 50, 2)
    with pytest.raises(ConfigError, match="unknown serve option"):
        create_app(predictor, max_batchs=4)


def test_bind_checks_the_port_as_the_settings_do():
    with pytest.raises(ConfigError, match="port must be between 0 and 65535"):
        bind("127.0.0.1", 70000)
