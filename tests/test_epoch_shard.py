"""How a training epoch's items are dealt to Ray Train workers."""

from __future__ import annotations

import pytest

from spanfirst.train.loop import epoch_shard


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
