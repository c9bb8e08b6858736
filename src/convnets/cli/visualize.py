"""``convnets visualize``: filters, activations, occlusion, deconvnet and dream pictures of a
network (:func:`convnets.inspect.visualize.run.visualize`); this module prints the path."""
from __future__ import annotations

import argparse

from .common import LibraryChoices, note
from .targets import add_target_arguments

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("visualize", help="look inside a network: filters, activations, occlusion, "
                                         "deconvnet / guided backprop / saliency, dream")
    p.add_argument("method", choices=LibraryChoices("convnets.inspect.visualize.run", "METHODS"),
                   metavar="METHOD",
                   help="filters (first-layer weights), activations (a layer's feature maps), "
                        "occlusion (Zeiler & Fergus Fig. 7), deconv (deconvnet, guided "
                        "backpropagation and saliency), dream (the network's image of a class "
                        "or layer)")
    add_target_arguments(p, ema=None)
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help="an image file (activations, occlusion, deconv; dream: where to start)")
    p.add_argument("--layer", help="a layer by its module name, as `convnets summary MODEL` lists "
                                   "them (default: the deepest top-level feature map)")
    p.add_argument("--class", dest="cls", metavar="C",
                   help="class index or name (occlusion, deconv: default the predicted one)")
    p.add_argument("--out", help="folder for the PNG (default: RUN/visualize for a run "
                                 "directory, else the current folder)")
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..inspect.visualize.run import visualize

    print(visualize(args.method, args.target, args.image, model=args.model, layer=args.layer,
                    cls=args.cls, out=args.out, device=args.device, max_maps=args.max_maps,
                    patch=args.patch, stride=args.stride, batch_size=args.batch_size,
                    top=args.top, channel=args.channel, steps=args.steps, octaves=args.octaves,
                    seed=args.seed, use_mean_image=args.mean_image, log=note))
