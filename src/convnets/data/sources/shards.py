"""``shards:DIR_OR_URL``: a shard folder written by ``convnets shards`` (see
:mod:`convnets.data.shards`), local or at an ``http(s)://`` URL. The preset and the
normalisation are those of the data the shards were written from."""
from __future__ import annotations

from ..shards import ShardDataset, check_shards, read_index
from . import Opened, Request, register_source


def open_shards(request: Request) -> Opened:
    root = request.arg
    index = read_index(root)
    split = index["splits"]["train" if request.split == "train" else "val"]
    check_shards(root, split["shards"])
    dataset = ShardDataset.of_split(root, split, list(index["classes"]), fail_fast=request.fail_fast,
                                    max_pixels=request.max_pixels)
    return Opened(dataset, index["preset"], tuple(index["mean"]), tuple(index["std"]),
                  selection=index.get("selection"))


register_source("shards", open_shards, argument="DIR_OR_URL")
