"""How a training epoch's items are dealt to Ray Train workers."""

from __future__ import annotations

import pytest

from spanfirst.train.loop import epoch_batches, epoch_shard


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 5, 16, 33, 2871])
def test_every_rank_gets_as_many_items_and_every_item_is_trained_on(n, world):
    shards = [epoch_shard(n, rank, world, seed=7) for rank in range(world)]
    # equal lengths: with 16 items per batch, shards of 33 and 32 would be 3 batches against 2,
    # and the rank with more would wait forever in DDP's all-reduce
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-n // world)
    dealt = [i for s in shards for i in s]
    assert set(dealt) == set(range(n)) and len(dealt) - n < world  # only the padding is seen twice
    assert epoch_shard(n, 0, world, seed=7) == shards[0] and (n < 3 or epoch_shard(n, 0, world, seed=8) != shards[0])


@pytest.mark.parametrize("n,batch", [(1, 4), (37, 4), (500, 3), (2871, 16)])
def test_length_grouped_batches_hold_the_same_items_in_as_many_batches_with_less_padding(n, batch):
    import random

    lengths = [random.Random(i).randint(5, 120) for i in range(n)]
    shard = epoch_shard(n, 0, 1, seed=3)
    plain, grouped = epoch_batches(shard, batch, None, 3), epoch_batches(shard, batch, lengths, 3)
    assert len(grouped) == len(plain) == -(-n // batch)  # every rank still steps as often
    assert sorted(i for b in grouped for i in b) == sorted(shard)
    assert epoch_batches(shard, batch, lengths, 3) == grouped  # seeded

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    if n >= 10 * batch:
        assert padded(grouped) < 0.8 * padded(plain)
        assert [b[0] for b in grouped[:5]] != [b[0] for b in epoch_batches(shard, batch, lengths, 4)[:5]]


def test_auto_threads_share_a_node_among_the_workers():
    from spanfirst.train.loop import auto_threads

    assert [auto_threads(2, w) for w in (1, 2, 3)] == [2, 1, 1]
    assert auto_threads(16.0, 3) == 5 and auto_threads(0, 1) == 1
