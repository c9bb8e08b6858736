"""Batch norm of a (rows, C) matrix on a view of whole cache lines equals the native kernel's."""
import pytest
import torch

from convnets.models import narrow_batchnorm as nb


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_fold_factor_makes_rows_whole_cache_lines(two_threads):
    assert nb.fold_factor(torch.zeros(64, 24)) == 2    # 2 x 24 floats = 192 bytes, 3 lines
    assert nb.fold_factor(torch.zeros(64, 12)) == 4
    assert nb.fold_factor(torch.zeros(64, 36)) == 4
    assert nb.fold_factor(torch.zeros(64, 12, dtype=torch.float64)) == 2
    assert nb.fold_factor(torch.zeros(64, 16)) == 1    # already one line a row
    assert nb.fold_factor(torch.zeros(6, 12)) == 1     # rows not divisible by 4
    assert nb.fold_factor(torch.zeros(64, 24).t()) == 1
    assert nb.fold_factor(torch.zeros(64, 24, dtype=torch.bfloat16)) == 1
    torch.set_num_threads(1)
    assert nb.fold_factor(torch.zeros(64, 24)) == 1    # one thread shares no line


@pytest.mark.parametrize("channels", [6, 12, 20, 36])  # doubles: 48 to 288 bytes a row
def test_forward_and_backward_equal_the_native_kernels(two_threads, channels):
    """In float64, so that the only difference, the order of the additions, is invisible."""
    torch.manual_seed(channels)
    rows = 4 * 9 * 10
    x = torch.randn(rows, channels, dtype=torch.float64) * 3 + 2
    grad = torch.randn(rows, channels, dtype=torch.float64)
    weight = torch.rand(channels, dtype=torch.float64) + 0.5
    bias = torch.randn(channels, dtype=torch.float64)
    stats = [torch.randn(channels, dtype=torch.float64), torch.rand(channels, dtype=torch.float64) + 1]
    native_stats = [s.clone() for s in stats]
    k = nb.fold_factor(x)
    assert k > 1
    out, mean, invstd = nb.forward(x, weight, bias, *stats, 0.1, 1e-5, k)
    want = torch.native_batch_norm(x, weight, bias, *native_stats, True, 0.1, 1e-5)
    for got, ref in zip((out, mean, invstd, *stats), (*want, *native_stats)):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    grads = nb.backward(grad, x, weight, mean, invstd, 1e-5, k)
    want = torch.ops.aten.native_batch_norm_backward(grad, x, weight, None, None, want[1], want[2],
                                                     True, 1e-5, [True, True, True])
    for got, ref in zip(grads, want):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
