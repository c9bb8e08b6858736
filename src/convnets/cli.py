"""The ``convnets`` command. It parses arguments and calls the library; nothing else.

Every failure a user can cause (a wrong name, size, option or path) ends in one line on
stderr and exit status 2; a traceback means a bug in convnets.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from .errors import ConfigError, ConvnetsError

__all__ = ["main", "build_parser"]


class UserError(ConfigError):
    """A problem with the command line itself, reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(f"{message} (see `{self.prog} --help`)")


# --- subcommands -----------------------------------------------------------------------

def _fmt_err(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_models(args: argparse.Namespace) -> None:
    from .models import list_models, model_info
    from .perf.profile import count_flops, count_params, meta_model

    names = list_models(args.pattern)
    if not names:
        raise UserError(f"no model matches {args.pattern!r}")
    header = f"{'model':<22} {'params':>13} {'GFLOPs':>8} {'input':>11} {'dataset':>9} {'top-1':>6} {'top-5':>6}"
    print(header)
    print("-" * len(header))
    for name in names:
        info = model_info(name)
        model = meta_model(name)
        params, gflops = count_params(model), count_flops(model, info.input_size) / 1e9
        size = "x".join(map(str, info.input_size))
        print(f"{name:<22} {params:>13,} {gflops:>8.2f} {size:>11} {info.dataset:>9} "
              f"{_fmt_err(info.top1_err):>6} {_fmt_err(info.top5_err):>6}")
    print(f"\n{len(names)} models. GFLOPs = 2 x multiply-adds at the input size shown "
          "(torchvision and timm publish multiply-adds as GFLOPS); top-1/top-5: published error, %.")


def cmd_summary(args: argparse.Namespace) -> None:
    from .models import model_info
    from .core import parse_input_size
    from .perf.profile import layer_summary

    info = model_info(args.model)
    size = parse_input_size(args.input_size, info.input_size[0]) if args.input_size else info.input_size
    if args.depth < 1:
        raise UserError("--depth must be at least 1")
    rows, params, macs = layer_summary(info.name, size, depth=args.depth,
                                       num_classes=args.num_classes or info.num_classes)
    width = max(len("layer"), *(len(r.name) for r in rows))
    header = f"{'layer':<{width}}  {'type':<16} {'output shape':<20} {'params':>12} {'mult-adds':>15}"
    print(f"{info.name}: input {'x'.join(map(str, size))}")
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
        print(f"{r.name:<{width}}  {r.kind:<16} {shape:<20} {r.params:>12,} {r.macs:>15,}")
    print("-" * len(header))
    print(f"{'total':<{width}}  {'':<16} {'':<20} {params:>12,} {macs:>15,}")
    print(f"parameters: {params:,}   multiply-adds: {macs / 1e9:.3f} G   FLOPs (2 x MACs): {2 * macs / 1e9:.3f} G")


def cmd_benchmark(args: argparse.Namespace) -> None:
    import json

    from .perf.benchmark import benchmark, format_result

    opts = {k: getattr(args, k) for k in ("mode", "batch", "input_size", "amp", "channels_last",
                                          "optimize", "compile", "compare", "warmup", "repeats",
                                          "device")}
    result = benchmark(args.model, **opts)
    print(json.dumps(result.to_dict()) if args.json else format_result(result))


def cmd_info(args: argparse.Namespace) -> None:
    from .models import model_info

    for key, value in model_info(args.model).as_dict().items():
        if value not in (None, "", ()):
            print(f"{key:<12} {value}")


def cmd_train(args: argparse.Namespace) -> None:
    from .engine.config import load_config, recipe_config, train_options
    from .engine.train import fit

    given = {f.name: getattr(args, f.name) for f, _, _ in train_options()
             if getattr(args, f.name) is not None}
    if args.model is not None:
        given["model"] = args.model
    if args.resume:
        if args.recipe or args.out:
            raise UserError(f"--resume continues a run with its saved config; "
                            f"{'--recipe' if args.recipe else '--out'} cannot be given with it")
        # fit() refuses changes to anything but the fields that may change on resume.
        cfg = load_config(os.path.join(args.resume, "config.json")) if os.path.isdir(args.resume) else None
        if cfg is None:
            raise UserError(f"run directory not found: {args.resume}")
        cfg, run_dir = cfg.replace(**given), args.resume
    else:
        cfg, run_dir = recipe_config(args.recipe or "digits", **given), args.out
    result = fit(cfg, run_dir, resume=bool(args.resume))
    last, best = result["last"], result["best"]
    if last is not None:
        print(f"done: {result['run_dir']}  test top-1 error {last['test_top1_err']:.2f}%  "
              f"top-5 error {last['test_top5_err']:.2f}%  (last epoch, {last['epoch']}); best "
              f"top-1 error {best['test_top1_err']:.2f}% at epoch {best['epoch']}")


def cmd_recipes(args: argparse.Namespace) -> None:
    from .data import list_presets
    from .engine.config import RECIPES, TrainConfig

    for recipe in RECIPES.values():
        cfg = TrainConfig(**recipe.settings)
        momentum = f"{cfg.momentum} {'Nesterov' if cfg.nesterov else 'plain'}"
        sched = (f"step /{1 / cfg.gamma:g} at {', '.join(map(str, cfg.milestones))}"
                 if cfg.schedule == "step" else "cosine")
        if cfg.warmup_epochs:
            sched += f", {cfg.warmup_epochs:g} warm-up epochs"
        print(f"{recipe.name}  ({recipe.source})")
        print(f"  model {cfg.model}, data preset {cfg.preset or 'the dataset default'}, "
              f"{cfg.epochs} epochs, batch {cfg.batch_size}")
        print(f"  SGD lr {cfg.lr:g}, momentum {momentum}, weight decay {cfg.weight_decay:g}, "
              f"schedule {sched}")
        if recipe.notes:
            print(f"  {recipe.notes}")
        print()
    print("data presets (--preset):")
    for name, text in list_presets().items():
        print(f"  {name:<10} {text}")


def cmd_eval(args: argparse.Namespace) -> None:
    import json

    from .engine.runs import evaluate_targets

    if args.scales and args.crops == "center":
        raise UserError("--scales applies to --crops ten, dense and ten+dense")
    res = evaluate_targets(args.targets, data=args.data, preset=args.preset, model=args.model,
                           ema=args.ema, crops=args.crops, scales=args.scales,
                           batch_size=args.batch_size, workers=args.workers, device=args.device,
                           out=args.out, log=_note)
    if args.json:
        print(json.dumps(res["summary"]))
        return
    what = f"ensemble of {res['members']}" if res["members"] > 1 else "model"
    print(f"{what}, {args.crops} crops, {res['n']} test images")
    print(f"top-1 error {res['top1_err']:.2f}%  top-5 error {res['top5_err']:.2f}%  loss {res['loss']:.4f}")
    per_class = res["per_class_acc"].tolist()
    if len(per_class) <= 20:
        names = res["classes"] or [str(i) for i in range(len(per_class))]
        print("per-class accuracy: " + "  ".join(f"{name} {acc:.1f}%" for name, acc in zip(names, per_class)))
    if res["out"]:
        print(f"wrote {res['out']}/eval.json" + (" and confusion.png" if len(per_class) <= 100 else ""))


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def cmd_analyze(args: argparse.Namespace) -> None:
    import itertools

    from torch.utils.data import DataLoader

    from .data import open_dataset
    from .engine.runs import RunTarget, load_models, resolve_target
    from .inspect.singularity import analyze_singularities
    from .models import model_info
    from .core import parse_input_size

    if args.analysis != "singularity":
        raise UserError("choose an analysis: `convnets analyze singularity MODEL ...`")
    if args.batches < 1 or args.batch_size < 1:
        raise UserError("--batches and --batch-size must be at least 1")
    if not 0.0 < args.threshold < 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    info = model_info(args.model)
    if args.run:
        target = resolve_target(args.run)
        if target.model != info.name:
            raise UserError(f"{args.run} holds a {target.model}, not a {info.name}")
        target.weights = target.weights[:1]
    else:
        target = RunTarget(info.name, [args.weights] if args.weights else [])
    data = args.data if args.data is not None else (target.config.data if target.config else None)
    size = parse_input_size(args.input_size, info.input_size[0]) if args.input_size else target.input_size
    dataset = open_dataset(data, "test", input_size=size, train_transform=False)
    model = load_models(target, num_classes=getattr(dataset, "num_classes", None))[0]
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    batches = (x for x, _ in itertools.islice(loader, args.batches))
    rows = analyze_singularities(model, batches, threshold=args.threshold)
    width = max(len("layer"), *(len(r.name) for r in rows))
    header = (f"{'layer':<{width}}  {'kind':<12} {'channels':>8} {'dead':>5} "
              f"{'collapsed':>9} {'of pairs':>9} {'PR':>8} {'dims99':>6}")
    source = f" ({target.weights[0]})" if target.weights else " (initialisation)"
    print(f"{info.name}{source}, {min(args.batches, len(loader))} batch(es) of "
          f"{data or 'digits'} test images")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.name:<{width}}  {r.kind:<12} {r.channels:>8} {r.dead:>5} {r.collapsed_pairs:>9} "
              f"{r.pairs:>9} {r.participation_ratio:>8.1f} {r.dims99:>6}")
    print(f"collapsed: live channel pairs with |correlation| > {args.threshold} over images and "
          "positions; PR: participation ratio of the channel covariance eigenvalues; dims99: "
          "eigenvalues holding 99% of the variance.")


def _print_top(pred, out) -> None:
    top = ", ".join(f"{name} {100 * p:.1f}%" for name, p in zip(pred.classes, pred.probabilities))
    print(f"{pred.source}: {top}", file=out)


def cmd_predict(args: argparse.Namespace) -> None:
    import json

    from tqdm import tqdm

    from .errors import DataError
    from .inference.predict import Predictor, find_images

    if args.target.lower().endswith(".onnx"):  # written by `convnets export`: ONNX Runtime
        from .inference.export import OnnxPredictor

        predictor = OnnxPredictor(args.target)
    else:
        predictor = Predictor.from_target(args.target, model=args.model, device=args.device,
                                          ema=args.ema)
    if not predictor.weights:
        _note(f"note: {predictor.model_name} has no weights given; these are the predictions of "
              "its untrained initialisation")
    inputs, empty = [], 0
    for path in args.images:  # a folder with no images is one error; the others still run
        try:
            inputs += find_images(path) if os.path.isdir(path) else [path]
        except DataError as err:
            _error_line(err)
            empty += 1
    failed = empty
    bar = tqdm(total=len(inputs), unit="img", disable=not sys.stderr.isatty(), leave=False,
               dynamic_ncols=True)
    for pred in predictor.iter_predictions(inputs, args.topk, batch_size=args.batch_size,
                                           keep_going=True, workers=args.workers):
        bar.update(1)
        if pred.error is not None:
            failed += 1
            with bar.external_write_mode():
                _error_line(pred.error)
            continue
        with bar.external_write_mode():
            if args.json:
                print(json.dumps(pred.as_dict()))
            else:
                _print_top(pred, sys.stdout)
    bar.close()
    if failed:
        raise DataError(f"{failed} of {len(inputs) + empty} inputs could not be predicted")


def cmd_export(args: argparse.Namespace) -> None:
    from .inference.export import export_onnx

    predictor = export_onnx(args.target, args.onnx, opset=args.opset, input_size=args.input_size,
                            model=args.model, ema=args.ema, force=args.force)
    if not predictor.weights:
        _note(f"note: {predictor.model_name} has no weights given; exporting its untrained "
              "initialisation")
    c, h, w = predictor.input_size if args.input_size is None else (predictor.input_size[0],
                                                                    args.input_size, args.input_size)
    print(f"wrote {args.onnx}: {predictor.model_name}, input (batch, {c}, {h}, {w}), "
          f"{len(predictor.classes)} classes, opset {args.opset}")


def cmd_serve(args: argparse.Namespace) -> None:
    from .inference.predict import Predictor
    from .serve import bind, create_app, serve

    for flag, value, low in (("--max-batch", args.max_batch, 1), ("--workers", args.workers, 1),
                             ("--max-bytes", args.max_bytes, 1), ("--max-pixels", args.max_pixels, 1)):
        if value < low:
            raise UserError(f"{flag} must be at least {low}, got {value}")
    if not 0 <= args.max_wait_ms < float("inf"):
        raise UserError(f"--max-wait-ms must be a finite number of at least 0, got {args.max_wait_ms}")
    sock = bind(args.host, args.port)  # first: a port in use is said before a model loads
    try:
        predictor = Predictor.from_target(args.target, model=args.model, device=args.device,
                                          ema=args.ema)
        if not predictor.weights:
            _note(f"note: {predictor.model_name} has no weights given; serving its untrained "
                  "initialisation")
        app = create_app(predictor, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         workers=args.workers, max_bytes=args.max_bytes,
                         max_pixels=args.max_pixels)
    except BaseException:
        sock.close()
        raise
    serve(app, sock, log_level=args.log_level,
          announce=lambda url: print(f"serving {predictor.model_name} at {url} (API: {url}docs; "
                                     "Ctrl-C stops)", flush=True))


def _error_line(err) -> None:
    print(f"convnets: error: {err}", file=sys.stderr)


def cmd_export_images(args: argparse.Namespace) -> None:
    from .data.export import export_images

    counts = export_images(args.data, args.out, split=args.split, per_class=args.per_class)
    print(f"wrote {sum(counts.values())} images of the {args.split} split in {len(counts)} class "
          f"folders to {args.out}")


def cmd_transfer(args: argparse.Namespace) -> None:
    import json

    from .inference.transfer import METHODS, transfer

    res = transfer(args.target, args.data, args.shots, classes=args.classes, model=args.model,
                   finetune=args.finetune, scratch=args.scratch, draws=args.draws, seed=args.seed, steps=args.steps,
                   device=args.device, log=None if args.json else _note)
    if args.json:
        print(json.dumps(res.as_dict()))
        return
    seeds = (f"seed {res.seeds[0]}" if len(res.seeds) == 1
             else f"seeds {res.seeds[0]}-{res.seeds[-1]}")
    print(f"{res.model} from {res.target} -> {res.data}: {len(res.classes)} classes "
          f"({', '.join(res.classes[:10])}{', ...' if len(res.classes) > 10 else ''}), "
          f"{res.shots} training images each, {len(res.seeds)} draws ({seeds}), "
          f"{res.test_images} test images")
    for method, errs in res.errors.items():
        mean, std = res.mean_std(method)
        draws = " ".join(f"{e:.1f}" for e in errs)
        print(f"  {METHODS[method]:<38} test top-1 error {mean:6.2f}% +- {std:5.2f}  "
              f"(per draw: {draws})")
VISUALIZE_METHODS = ("filters", "activations", "occlusion", "deconv", "dream")


def _visualize_name(args: argparse.Namespace, model_name: str) -> str:
    """The PNG's file name: method, model, and what was chosen (image, layer, class)."""
    import re

    parts = [args.method, model_name]
    if args.image:
        parts.append(os.path.splitext(os.path.basename(args.image))[0])
    if args.layer:
        parts.append(args.layer + (f"-map{args.channel}" if args.channel is not None else ""))
    if args.cls is not None:
        parts.append(f"class{args.cls}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)) + ".png"


def _dream_mean_image(predictor, args: argparse.Namespace):
    """The mean image of the run's training data (the dream's prior), or None when there
    is no run, its data is not on this machine, or it is not wanted."""
    from .data import open_dataset
    from .engine.runs import resolve_target
    from .inspect.visualize import mean_image

    if not args.mean_image or args.image:
        return None
    run = resolve_target(args.target, model=args.model)
    flat = "the dream starts from noise around the data's mean colour, not its mean image"
    if run.config is None:
        _note(f"note: no run, so no training data: {flat}")
        return None
    try:
        train = open_dataset(run.config.data, "train", input_size=predictor.input_size,
                             train_transform=False, preset=predictor.preset)
    except ValueError as err:  # open_dataset's one-line "missing or malformed" errors
        _note(f"note: the run's training data cannot be opened here ({err}): {flat}")
        return None
    return mean_image(train)


def cmd_visualize(args: argparse.Namespace) -> None:
    from .inspect import visualize as V
    from .inference.predict import Predictor

    method = args.method
    if method in ("activations", "occlusion", "deconv") and not args.image:
        raise UserError(f"{method} looks at an image: give IMAGE after the TARGET")
    if method == "filters" and (args.image or args.layer or args.cls is not None):
        raise UserError("filters shows the first layer's weights; it takes no IMAGE, --layer or "
                        "--class")
    if args.channel is not None and method != "dream":
        raise UserError("--channel chooses the feature map a dream ascends; only dream takes it")
    if method == "dream" and (args.cls is None) == (args.layer is None):
        raise UserError("dream of a class or of a layer: give --class C or --layer NAME")
    predictor = Predictor.from_target(args.target, model=args.model, device=args.device)
    if not predictor.weights:
        _note(f"note: {predictor.model_name} has no weights given; showing its untrained "
              "initialisation")
    model, classes = predictor.model, predictor.classes
    norm = dict(mean=predictor.mean, std=predictor.std, classes=classes)
    x = predictor.preprocess(args.image).to(predictor.device) if args.image else None
    title = predictor.model_name + (f" on {os.path.basename(args.image)}" if args.image else "")
    if method == "filters":
        fig = V.plot_filters(V.first_layer_filters(model), title=title)
    elif method == "activations":
        fig = V.plot_activations(V.layer_activations(model, x, args.layer), x, title=title,
                                 max_maps=args.max_maps, **norm)
    elif method == "occlusion":
        result = V.occlusion(model, x, target=args.cls, classes=classes, layer=args.layer,
                             patch=args.patch, stride=args.stride, batch_size=args.batch_size)
        fig = V.plot_occlusion(result, x, title=title, **norm)
    elif method == "deconv":
        result = V.project_back(model, x, layer=args.layer, target=args.cls, classes=classes,
                                top=args.top)
        fig = V.plot_projection(result, x, title=title, **norm)
    else:
        priors = V.DreamPriors(**{k: getattr(args, k) for k in ("steps", "octaves")
                                  if getattr(args, k) is not None})
        # Grey training data reaches the network as equal channels with equal statistics.
        grey = len(set(predictor.mean)) == 1 and len(set(predictor.std)) == 1
        result = V.dream(model, predictor.input_size, mean=predictor.mean, std=predictor.std,
                         target=args.cls, classes=classes, layer=args.layer,
                         channel=args.channel, image=x, priors=priors, grey=grey, seed=args.seed,
                         mean_image=_dream_mean_image(predictor, args))
        fig = V.plot_dream(result, title=title, **norm)
    out = args.out or (os.path.join(args.target, "visualize") if os.path.isdir(args.target)
                       else ".")
    print(V.save_figure(fig, os.path.join(out, _visualize_name(args, predictor.model_name))))


# --- parser ----------------------------------------------------------------------------

def _flag_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """A parser of the library as an argparse type: its message, not "invalid value"."""

    def flag_type(text: str) -> object:
        try:
            return parse(text)
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return flag_type


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field that has one, generated from the field: its type,
    choices and help. Every default is None, meaning "as the recipe or saved run says"."""
    from .engine.config import train_options

    for f, opt, kind in train_options():
        metavar = opt.metavar or opt.flag.lstrip("-").upper().replace("-", "_")
        kw: dict = dict(dest=f.name, default=None, help=opt.help, metavar=metavar)
        if kind is bool:
            kw.update(action=argparse.BooleanOptionalAction)
            kw.pop("metavar")
        else:
            kw.update(type=_flag_type(opt.parse) if opt.parse else kind, choices=opt.choices)
            if opt.const is not None:
                kw.update(nargs="?", const=opt.const)
        p.add_argument(opt.flag, **kw)


def _data_help() -> str:
    from dataclasses import fields

    from .engine.config import TrainConfig

    return next(f for f in fields(TrainConfig) if f.name == "data").metadata["option"].help


def build_parser() -> argparse.ArgumentParser:
    from .engine.config import int_list

    parser = _Parser(prog="convnets", description="Deep convolutional networks of the ImageNet era: "
                     "list and inspect models, train them with the papers' recipes, evaluate them, "
                     "ask them about images and reuse their features.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("models", help="list registered models with parameters, GFLOPs and published error")
    p.add_argument("pattern", nargs="?", help="glob or substring to filter names (e.g. 'gunn*', resnet)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="per-layer table: output shapes, parameters, multiply-adds")
    p.add_argument("model", help="model name (see `convnets models`)")
    p.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    p.add_argument("--depth", type=int, default=3, help="how deep into the module tree to list (default 3)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's own)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("benchmark", help="images/s, latency, GFLOP/s and memory of a model, "
                       "side by side with torchvision/timm")
    p.add_argument("model", help="model name (see `convnets models`)")
    p.add_argument("--mode", choices=["infer", "train"], default="infer")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="autocast precision (default fp32)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--optimize", action="store_true", help="ours through convnets.perf.optimize")
    p.add_argument("--compile", action="store_true", help="torch.compile both sides")
    p.add_argument("--compare", choices=["torchvision", "timm", "sunn"],
                   help="time the same network from there, interleaved (GUNN: sunn by default)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20, help="timed batches per model")
    p.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("info", help="what the literature says about a model")
    p.add_argument("model", help="model name")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a model (default: ResNet-20 on the built-in digits)")
    p.add_argument("model", nargs="?", help="model name (default: the recipe's model)")
    p.add_argument("--recipe", help="named hyper-parameters (default digits; `convnets recipes`)")
    p.add_argument("--out", help="run directory (default runs/MODEL-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5 error of runs, checkpoints or models (several: ensemble)")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="run directory, weights file (.safetensors/.pt) or model name")
    p.add_argument("--data", help="dataset spec (default: the run's)")
    p.add_argument("--preset", help="evaluation preset (default: the run's or the dataset's)")
    p.add_argument("--model", help="model name for weights files outside a run directory")
    p.add_argument("--crops", choices=["center", "ten", "dense", "ten+dense"], default="center",
                   help="centre crop, 10 crops (AlexNet), dense multi-scale (VGG), or both")
    p.add_argument("--scales", type=_flag_type(int_list), help="dense evaluation: shorter sides, e.g. 256,384,512")
    p.add_argument("--ema", action="store_true", help="evaluate a run's EMA weights")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="where to write eval.json and confusion.png (default: the run directory)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of images (files or folders) for a run, "
                                       "weights file or model")
    p.add_argument("target", metavar="TARGET",
                   help="run directory, weights file (.safetensors/.pt, with --model) or model name")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, or folders (every image in them, recursively)")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--model", help="model name for weights files outside a run directory")
    p.add_argument("--ema", action="store_true", help="use a run's EMA weights")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=0, help="image-decoding processes (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a run, weights file or model as an ONNX file that "
                                      "`predict` (and ONNX Runtime) can run")
    p.add_argument("target", metavar="TARGET",
                   help="run directory, weights file (.safetensors/.pt, with --model) or model name")
    p.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 11 to 20 (default 17)")
    p.add_argument("--input-size", type=int, metavar="S",
                   help="height and width of the input (default: the run's or the model's)")
    p.add_argument("--model", help="model name for weights files outside a run directory")
    p.add_argument("--ema", action="store_true", help="export a run's EMA weights")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="a classification service with a web page for a run, "
                                     "weights file or model (HTTP, JSON API)")
    p.add_argument("target", metavar="TARGET",
                   help="run directory, weights file (.safetensors/.pt, with --model) or model name")
    p.add_argument("--model", help="model name for weights files outside a run directory")
    p.add_argument("--ema", action="store_true", help="use a run's EMA weights")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free one)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="most images in one forward pass (default 32; 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="longest a forward pass waits for requests on their way to join it "
                        "(default 10; it never waits when none is)")
    p.add_argument("--workers", type=int, default=2,
                   help="threads decoding uploaded images at once (default 2)")
    p.add_argument("--max-bytes", type=int, default=10_000_000,
                   help="largest request body accepted, bytes (default 10000000)")
    p.add_argument("--max-pixels", type=int, default=25_000_000,
                   help="largest image accepted, pixels, checked before decoding (default 25000000)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="uvicorn's logging, access log included at info (default info)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export-images", help="write a dataset's images as PNG files, one folder "
                                             "per class (to try predict on)")
    p.add_argument("data", metavar="DATA", help=_data_help())
    p.add_argument("out", metavar="DIR", help="a new or empty folder")
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="which split (default test: images no run has trained on)")
    p.add_argument("--per-class", type=int, help="at most this many images of each class")
    p.set_defaults(func=cmd_export_images)

    p = sub.add_parser("transfer", help="fit a linear classifier on a network's frozen features "
                                        "from N images per class; compare with training from scratch")
    p.add_argument("target", metavar="TARGET", help="run directory, weights file or model name")
    p.add_argument("--data", required=True, help=f"the new task's {_data_help()}")
    p.add_argument("--shots", type=int, required=True, help="training images per class")
    p.add_argument("--classes", help="some of the data's classes: names, indices or ranges, "
                                     "e.g. 5-9 or cat,dog")
    p.add_argument("--finetune", action="store_true",
                   help="also fine-tune the whole network from its trained weights")
    p.add_argument("--no-scratch", dest="scratch", action="store_false",
                   help="skip training from scratch (e.g. to compare the features of "
                        "several networks against one scratch baseline)")
    p.add_argument("--draws", type=int, default=5,
                   help="draws of the training images, one seed each (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first draw (default 0)")
    p.add_argument("--steps", type=int, default=300,
                   help="SGD steps from scratch and for fine-tuning (default 300)")
    p.add_argument("--model", help="model name for weights files outside a run directory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("recipes", help="the papers' training recipes and the data presets")
    p.set_defaults(func=cmd_recipes)
    p = sub.add_parser("analyze", help="inspect activations: `analyze singularity` counts collapsed "
                                       "channels and effective dimensionality per layer")
    p.set_defaults(func=cmd_analyze, analysis=None)
    analyses = p.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=_Parser)
    q = analyses.add_parser("singularity", help="collapsed channel pairs and effective dimensionality "
                                                "(Orhan & Pitkow 2018; GUNN paper Section 4)")
    q.add_argument("model", help="model name (see `convnets models`)")
    source = q.add_mutually_exclusive_group()
    source.add_argument("--weights", help="a weights file (default: the model's initialisation)")
    source.add_argument("--run", help="a run directory: its last checkpoint and its dataset")
    q.add_argument("--data", help="dataset spec (default: the run's, else the built-in digits)")
    q.add_argument("--batches", type=int, default=4, help="test batches to analyse (default 4)")
    q.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    q.add_argument("--threshold", type=float, default=0.99,
                   help="|correlation| above which two channels count as collapsed (default 0.99)")
    q.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    q.set_defaults(func=cmd_analyze)

    p = sub.add_parser("visualize", help="look inside a network: filters, activations, occlusion, "
                                         "deconvnet / guided backprop / saliency, dream")
    p.add_argument("method", choices=VISUALIZE_METHODS, metavar="METHOD",
                   help="filters (first-layer weights), activations (a layer's feature maps), "
                        "occlusion (Zeiler & Fergus Fig. 7), deconv (deconvnet, guided "
                        "backpropagation and saliency), dream (the network's image of a class "
                        "or layer)")
    p.add_argument("target", metavar="TARGET",
                   help="run directory, weights file (.safetensors/.pt, with --model) or model name")
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help="an image file (activations, occlusion, deconv; dream: where to start)")
    p.add_argument("--model", help="model name for weights files outside a run directory")
    p.add_argument("--layer", help="a layer by its module name, as `convnets summary MODEL` lists "
                                   "them (default: the deepest top-level feature map)")
    p.add_argument("--class", dest="cls", metavar="C",
                   help="class index or name (occlusion, deconv: default the predicted one)")
    p.add_argument("--out", help="folder for the PNG (default: RUN/visualize for a run "
                                 "directory, else the current folder)")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-maps", type=int, default=64, help="activations: maps shown (default 64)")
    p.add_argument("--patch", type=int, help="occlusion: side of the grey square in pixels "
                                             "(default 3/8 of the image)")
    p.add_argument("--stride", type=int, help="occlusion: step between positions in pixels "
                                              "(default a sixteenth of the image)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="occlusion: occluded images per forward pass (default 64)")
    p.add_argument("--top", type=int, default=1,
                   help="deconv with --layer: activations kept in the strongest map (default 1)")
    p.add_argument("--channel", type=int, help="dream with --layer: ascend this feature map only")
    p.add_argument("--steps", type=int, help="dream: ascent steps per octave (default 64)")
    p.add_argument("--octaves", type=int, help="dream: octaves, coarse to fine (default 3)")
    p.add_argument("--seed", type=int, default=0, help="dream: seed of the noise and jitter")
    p.add_argument("--mean-image", action=argparse.BooleanOptionalAction, default=True,
                   help="dream: start from, and regularise towards, the training data's mean "
                        "image when the run's data is on this machine (default yes)")
    p.set_defaults(func=cmd_visualize)
    return parser


def _as_flags(err: ConvnetsError) -> str:
    """The error with an option named by its flag (``--wd``, not ``weight_decay``; a library
    argument such as ``batch_size`` as ``--batch-size``)."""
    option = getattr(err, "option", None)
    if option:
        from .engine.config import train_options

        flags = {f.name: opt.flag for f, opt, _ in train_options()}
        return f"{flags.get(option, '--' + option.replace('_', '-'))} {err.text}"
    return str(err)


def _version() -> str:
    from . import __version__

    return f"convnets {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        func: Callable[[argparse.Namespace], None] = args.func
        from .perf.allocator import keep_freed_memory

        keep_freed_memory()  # see its module: fewer page faults in every training/inference step
        func(args)
    except ConvnetsError as err:
        from .engine.distributed import PeerFailure

        # In a data-parallel job the process that failed says why; the others, stopped
        # because of it, add nothing.
        if not isinstance(err, PeerFailure):
            rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
            where = f"(process {rank}) " if rank != "0" else ""
            print(f"convnets: error: {where}{_as_flags(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convnets: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `convnets models | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
