"""Dynamic batching: in the real server, and the Batcher alone."""
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from convnets.serve import Batcher

from conftest import Server


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def patient_server(served_run, tmp_path_factory):
    """Waits up to 300 ms to gather at most 4 images per forward pass."""
    s = Server(served_run, "--max-batch", "4", "--max-wait-ms", "300",
               log_dir=tmp_path_factory.mktemp("logs"))
    yield s
    s.stop()


def test_concurrent_requests_share_passes_and_answers(patient_server, digit_pngs):
    images = [_read(p) for c in sorted(digit_pngs) for p in digit_pngs[c]][:8]
    singles = [patient_server.post_image("/v1/predict", data).json() for data in images]
    before = patient_server.stats()
    gate = threading.Barrier(len(images))

    def ask(data):
        gate.wait()
        return patient_server.post_image("/v1/predict", data).json()

    with ThreadPoolExecutor(len(images)) as pool:
        together = list(pool.map(ask, images))
    after = patient_server.stats()
    for one, many in zip(singles, together):
        assert [t["index"] for t in many["topk"]] == [t["index"] for t in one["topk"]]
        assert [t["probability"] for t in many["topk"]] == pytest.approx(
            [t["probability"] for t in one["topk"]], abs=1e-5)
    passes = after["forward_passes"] - before["forward_passes"]
    assert after["images"] - before["images"] == len(images)
    assert 2 <= passes < len(images)          # gathered, and never more than 4 at once
    assert after["largest_batch"] == 4


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_batcher_gathers_up_to_max_batch():
    seen = []

    def forward(x):
        seen.append(len(x))
        return x * 2

    async def main():
        b = Batcher(forward, max_batch=4, max_wait_ms=200)
        b.start()
        out = await asyncio.gather(*(b.submit(torch.tensor([float(i)])) for i in range(10)))
        await b.stop()
        return out, b.snapshot()

    out, stats = _run(main())
    assert [float(y) for y in out] == [2.0 * i for i in range(10)]  # each gets its own row
    assert seen == [4, 4, 2]
    assert stats == {"forward_passes": 3, "images": 10, "largest_batch": 4}


def test_a_lone_request_does_not_wait_when_nobody_is_arriving():
    async def main():
        b = Batcher(lambda x: x, max_batch=32, max_wait_ms=60_000)
        b.start()
        y = await asyncio.wait_for(b.submit(torch.ones(2)), 10)  # not the minute
        await b.stop()
        return y, b.snapshot()

    y, stats = _run(main())
    assert y.tolist() == [1.0, 1.0] and stats["forward_passes"] == 1


def test_a_batch_waits_for_an_announced_request():
    seen = []

    def forward(x):
        seen.append(len(x))
        return x

    async def main():
        b = Batcher(forward, max_batch=8, max_wait_ms=60_000)
        b.start()
        with b.arriving():  # a request still reading its body
            first = b.enqueue(torch.zeros(1))
            await asyncio.sleep(0.1)
            assert not first.done()  # held back for the announced one
            second = b.enqueue(torch.ones(1))
        out = [float(await first), float(await second)]
        await b.stop()
        return out

    assert _run(main()) == [0.0, 1.0]
    assert seen == [2]


def test_a_batch_waits_at_most_max_wait_for_an_announced_request():
    async def main():
        b = Batcher(lambda x: x, max_batch=8, max_wait_ms=50)
        b.start()
        with b.arriving():  # announced, and never comes
            y = await asyncio.wait_for(b.submit(torch.ones(1)), 10)
        await b.stop()
        return y

    assert _run(main()).tolist() == [1.0]


def test_forward_runs_off_the_event_loop():
    """The event loop goes on while a pass runs: here the pass cannot end until a
    coroutine on the loop lets it, which would deadlock a pass run on the loop."""
    release = threading.Event()

    def forward(x):
        assert release.wait(10), "the event loop was blocked by the forward pass"
        return x

    async def main():
        b = Batcher(forward, max_batch=2, max_wait_ms=0)
        b.start()
        pending = asyncio.ensure_future(b.submit(torch.zeros(1)))
        await asyncio.sleep(0.05)
        assert not pending.done()
        release.set()
        y = await pending
        await b.stop()
        return y

    assert _run(main()).tolist() == [0.0]


def test_a_failing_pass_fails_its_requests_and_the_next_pass_runs():
    calls = []

    def forward(x):
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    async def main():
        b = Batcher(forward, max_batch=8, max_wait_ms=50)
        b.start()
        first = await asyncio.gather(*(b.submit(torch.zeros(1)) for _ in range(3)),
                                     return_exceptions=True)
        second = await b.submit(torch.ones(1))
        await b.stop()
        return first, second

    first, second = _run(main())
    assert all(isinstance(e, RuntimeError) and str(e) == "boom" for e in first)
    assert second.tolist() == [1.0]


@pytest.mark.parametrize("options", [dict(max_batch=0), dict(max_wait_ms=-1)])
def test_batcher_refuses_bad_limits(options):
    with pytest.raises(ValueError):
        Batcher(lambda x: x, **options)
