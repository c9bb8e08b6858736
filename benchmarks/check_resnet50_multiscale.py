"""`convnets eval --protocol resnet-multiscale` against a loop written out here, for
torchvision's (seeded, random-weight) initialisation of ResNet-50 at the paper's shorter
sides 224, 256, 384, 480, 640 (He et al. 2015, Sec. 3.4), on a folder of non-square
images written by the script (the classifier's weights divided by 100, so that the
untrained network's softmax is not saturated). Prints each image's loss both ways and the largest
difference. The test suite checks the same code path with ResNet-18 at small sizes.

    PYTHONPATH=src python benchmarks/check_resnet50_multiscale.py [--images 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import save_file

import convnets
from convnets.engine.runs import evaluate_targets
from convnets.models.conventions import IMAGENET_MEAN, IMAGENET_STD

SIDES = (224, 256, 384, 480, 640)


def _folder(root: str, n: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(0)
    files = []
    for split in ("train", "val"):
        for k, cls in enumerate(("a", "b")):
            os.makedirs(os.path.join(root, split, cls))
            for i in range(n if split == "val" else 1):
                shape = (375, 500, 3) if i % 2 == 0 else (500, 333, 3)
                path = os.path.join(root, split, cls, f"{i}.png")
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
                if split == "val":
                    files.append((path, k))
    return files


def _by_hand(model, path: str, device) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    rgb = np.array(Image.open(path))
    x = ((torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - mean) / std)[None].to(device)
    h, w = x.shape[-2:]
    probs = []
    for q in SIDES:
        size = (round(h * q / min(h, w)), round(w * q / min(h, w)))
        xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear",
                                                    align_corners=False, antialias=True)
        probs.append(model(xs).softmax(1))
    return torch.stack(probs).mean(0)[0].cpu()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2, help="test images per class")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = convnets.create_model("resnet50", num_classes=2)
    model.load_state_dict(torchvision.models.resnet50(num_classes=2).state_dict())
    with torch.no_grad():  # untrained, eval-mode BN passes activations of ~1e2 to the head:
        model.fc.weight /= 100  # scaled so the softmax is not saturated and the losses compare
    model.eval().to(device)
    with tempfile.TemporaryDirectory() as tmp:
        files = _folder(os.path.join(tmp, "imgs"), args.images)
        weights = os.path.join(tmp, "r50.safetensors")
        save_file({k: v.cpu() for k, v in model.state_dict().items()}, weights)
        diffs = []
        start = time.perf_counter()
        for path, label in files:
            # one image at a time, so that eval's mean loss is this image's
            one = os.path.join(tmp, f"one-{len(diffs)}")
            for split in ("train", "val"):
                for cls in ("a", "b"):
                    os.makedirs(os.path.join(one, split, cls))
            os.symlink(path, os.path.join(one, "val", ("a", "b")[label], "x.png"))
            os.symlink(path, os.path.join(one, "train", "a", "x.png"))
            os.symlink(path, os.path.join(one, "train", "b", "x.png"))
            res = evaluate_targets([weights], model="resnet50", data=f"folder:{one}",
                                   protocol="resnet-multiscale", device=args.device,
                                   batch_size=8, log=lambda _: None)
            with torch.no_grad():
                loss = -_by_hand(model, path, device)[label].log().item()
            diffs.append(abs(res["loss"] - loss))
            print(f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}: "
                  f"eval loss {res['loss']:.6f}, hand-written loop {loss:.6f}, "
                  f"views {res['views']['views_per_image']} at {res['views']['scales']}")
        print(f"{len(files)} images, largest |difference| {max(diffs):.2e}, "
              f"{time.perf_counter() - start:.0f} s on {args.device}")


if __name__ == "__main__":
    main()
