"""Dynamic batching: requests that arrive together share one forward pass.

A network on a CPU or GPU classifies 32 images in far less than 32 times the time of
one (the weights are read once, the matrix products are wider), so a server that runs
each request alone wastes most of its machine as soon as clients overlap. The
:class:`Batcher` queues the preprocessed images of concurrent requests and runs them
as one batch when ``max_batch`` images are waiting or ``max_wait_ms`` has passed since
the first of them arrived, whichever comes first. It waits only for requests that are
on their way (being read and decoded, announced with :meth:`Batcher.arriving`): when
none is, the batch runs at once, so a lone client pays no waiting time. While a forward
pass runs, new requests queue, and the next pass takes them all at once: under load,
batches grow by themselves.

The forward pass runs on one dedicated thread, never on the event loop, so that the
server keeps accepting connections, decoding uploads and answering ``/healthz`` while
the network computes. One thread, not several: PyTorch already spreads one pass over
all cores, and work that must not interleave with a pass (occlusion maps hook the
model's layers) is queued on the same thread through :meth:`Batcher.run_alone`.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch

__all__ = ["Batcher", "BatchStats"]

T = TypeVar("T")


@dataclass
class BatchStats:
    """What the batcher has done so far: ``forward_passes`` batched passes holding
    ``images`` images in all, the largest ``largest_batch`` of them."""

    forward_passes: int = 0
    images: int = 0
    largest_batch: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"forward_passes": self.forward_passes, "images": self.images,
                "largest_batch": self.largest_batch}


async def _get_within(queue: asyncio.Queue, seconds: float) -> Any:
    """The next item of ``queue``, or a TimeoutError after ``seconds``."""
    if hasattr(asyncio, "timeout"):  # Python 3.11+: an item is never lost to the timeout
        async with asyncio.timeout(seconds):
            return await queue.get()
    return await asyncio.wait_for(queue.get(), seconds)


class Batcher:
    """Gathers single inputs into batches for ``forward`` (``(B, ...) -> (B, ...)``, run
    on the model thread); see the module docstring. Call :meth:`start` inside the
    event loop that will :meth:`submit`, and :meth:`stop` when done."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], *, max_batch: int = 32,
                 max_wait_ms: float = 10.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be at least 0, got {max_wait_ms}")
        self.forward = forward
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._lock = threading.Lock()  # stats are written on the model thread, read anywhere
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="convnets-model")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._arriving = 0  # requests announced and not yet queued (read on the loop only)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return self.stats.as_dict()

    # --- lifetime ------------------------------------------------------------------------

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._gather_and_run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._executor.shutdown(wait=True)

    # --- use -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce a request that will :meth:`enqueue` an input soon (its body is being
        read and decoded): until it does, or gives up, batches wait for it up to
        ``max_wait_ms``. Use on the event loop's thread."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def enqueue(self, x: torch.Tensor) -> asyncio.Future:
        """Queue the single input ``x`` (without its batch axis); the future gets its row
        of ``forward``'s output, computed in a batch with whatever else is queued."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() has not been called")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((x, future))
        return future

    async def submit(self, x: torch.Tensor) -> torch.Tensor:
        """``await enqueue(x)``: the output of ``forward`` for ``x``."""
        return await self.enqueue(x)

    async def run_alone(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the model thread, between batches, never beside one."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- the loop ------------------------------------------------------------------------

    async def _gather_and_run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not self._queue.empty():  # already waiting: no reason to sleep
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0 or self._arriving == 0:  # time is up, or nobody is coming
                    break
                try:
                    batch.append(await _get_within(self._queue, left))
                except (TimeoutError, asyncio.TimeoutError):
                    break
            # A client that went away has cancelled its future: no work for it.
            batch = [(x, f) for x, f in batch if not f.done()]
            if not batch:
                continue
            try:
                out = await loop.run_in_executor(self._executor, self._run,
                                                 [x for x, _ in batch])
            except Exception as err:  # each waiting request gets the error
                for _, f in batch:
                    if not f.done():
                        f.set_exception(err)
                continue
            for (_, f), y in zip(batch, out):
                if not f.done():
                    f.set_result(y)

    def _run(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        out = self.forward(torch.stack(inputs))
        with self._lock:
            self.stats.forward_passes += 1
            self.stats.images += len(inputs)
            self.stats.largest_batch = max(self.stats.largest_batch, len(inputs))
        return out
