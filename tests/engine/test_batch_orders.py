"""Batch orders: one sort draws every member's permutation, the same in every engine."""

from __future__ import annotations

import torch

from seqlab.engine.train import batch_orders


def test_each_row_is_a_permutation_and_rows_are_their_seeds_alone():
    seeds = torch.tensor([0, 1, 2, 0, 7])
    orders = batch_orders(seeds, epoch=3, n=257)  # (K, n): one call for the whole pack
    assert orders.shape == (5, 257)
    assert torch.equal(orders.sort(dim=1).values, torch.arange(257).expand(5, -1))
    for k, seed in enumerate(seeds.tolist()):  # a pack's row k is member k's eager order
        assert torch.equal(orders[k], batch_orders(torch.tensor([seed]), 3, 257)[0])
    assert torch.equal(orders[0], orders[3])
    assert not torch.equal(orders[0], orders[1])


def test_orders_change_with_the_epoch_and_are_fixed_for_a_seed():
    first, second = batch_orders(torch.tensor([5]), 0, 64), batch_orders(torch.tensor([5]), 1, 64)
    assert not torch.equal(first, second)
    # Pinned: a hash of (seed, epoch, index), not a generator's stream, so this order is the
    # same on any machine, device and torch version.
    assert batch_orders(torch.tensor([0]), 0, 10)[0].tolist() == [8, 1, 5, 3, 4, 0, 9, 2, 6, 7]


def test_orders_shuffle_well_enough():
    """Over many seeds, window 0 lands in each half of the order about equally often."""
    orders = batch_orders(torch.arange(2000), 0, 100)
    first_half = (orders[:, :50] == 0).any(dim=1).float().mean().item()
    assert 0.45 < first_half < 0.55
