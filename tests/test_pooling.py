"""Pooling over slices: each exam pooled over its own slices, batched equals one by one, attention weights."""

from __future__ import annotations

import pytest
import torch

from mrnet.models import POOLS, ModelArgs, MRNet
from mrnet.models.pooling import GatedAttentionPool, make_pool


@pytest.mark.parametrize("name", POOLS)
def test_batched_exams_equal_one_at_a_time(name):
    torch.manual_seed(0)
    pool = make_pool(name, 8)
    per_slice = torch.randn(9, 8)  # three exams of 2, 3 and 4 slices
    batched = pool(per_slice, [2, 3, 4])
    single = torch.stack([pool.pool(chunk) for chunk in per_slice.split([2, 3, 4])])
    assert batched.shape == (3, 8)
    torch.testing.assert_close(batched, single)


@pytest.mark.parametrize("name", POOLS)
def test_slice_order_does_not_matter(name):
    torch.manual_seed(0)
    pool = make_pool(name, 8)
    per_slice = torch.randn(5, 8)
    torch.testing.assert_close(pool.pool(per_slice), pool.pool(per_slice.flip(0)))


def test_max_and_mean_are_what_they_say():
    x = torch.tensor([[1.0, 5.0], [3.0, -1.0]])
    assert torch.equal(make_pool("max", 2).pool(x), torch.tensor([3.0, 5.0]))
    assert torch.equal(make_pool("mean", 2).pool(x), torch.tensor([2.0, 2.0]))
    assert make_pool("max", 2).weights(x) is None


def test_attention_weights_sum_to_one_and_pool_is_their_weighted_sum():
    torch.manual_seed(0)
    pool = GatedAttentionPool(8)
    per_slice = torch.randn(6, 8)
    weights = pool.weights(per_slice)
    assert weights.shape == (6,) and (weights > 0).all()
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    torch.testing.assert_close(pool.pool(per_slice), weights @ per_slice)
    same = pool.weights(per_slice[:1].expand(4, -1))
    torch.testing.assert_close(same, torch.full((4,), 0.25))  # identical slices weigh the same


def test_attention_learns_which_slice_matters():
    """One informative slice among noise: after a few steps it gets most of the weight."""
    torch.manual_seed(0)
    pool, head = GatedAttentionPool(4, hidden=8), torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam([*pool.parameters(), *head.parameters()], lr=0.05)
    for _ in range(150):
        bags = torch.randn(6, 5, 4) * 0.3
        labels = (torch.arange(6) % 2).float()
        bags[labels == 1, 2, 0] += 3.0  # positives: a signal in slice 2, feature 0
        logits = head(pool(bags.reshape(30, 4), [5] * 6)).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    positive = torch.randn(5, 4) * 0.3
    positive[2, 0] += 3.0
    assert pool.weights(positive).argmax().item() == 2


@pytest.mark.parametrize("name", POOLS)
def test_mrnet_with_each_pool_batched_equals_single(name):
    torch.manual_seed(0)
    net = MRNet(ModelArgs(pool=name)).eval()
    exams = [torch.randn(s, 1, 64, 64) for s in (3, 2)]
    with torch.inference_mode():
        single = torch.cat([net(x) for x in exams])
        batched = net(torch.cat(exams), [3, 2])
        assert torch.allclose(single, batched, atol=1e-5)
        weights = net.slice_weights(exams[0])
    assert (weights is None) == (name == "max")
