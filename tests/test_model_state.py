import torch

from s2s.model.state import DecoderState, Memory


def memory(rows: int, src_len: int, real: list[int]) -> Memory:
    values = torch.randn(rows, src_len, 4)
    mask = torch.arange(src_len)[None, :] < torch.tensor(real)[:, None]
    return Memory(values, values[..., :3] * 2, mask)


def test_memory_cat_pads_shorter_sources_with_masked_zeros():
    torch.manual_seed(0)
    a, b = memory(2, 5, [5, 3]), memory(1, 2, [2])
    joined = Memory.cat([a, b])
    assert joined.values.shape == (3, 5, 4) and joined.keys.shape == (3, 5, 3)
    assert torch.equal(joined.values[:2], a.values) and torch.equal(joined.values[2, :2], b.values[0])
    assert not joined.mask[2, 2:].any() and not joined.values[2, 2:].any() and not joined.keys[2, 2:].any()
    assert torch.equal(joined.index_select(torch.tensor([2, 0])).mask, torch.stack([joined.mask[2], joined.mask[0]]))
    assert joined.prefix(2, 3).values.shape == (2, 3, 4)


def test_decoder_state_rows_select_slice_and_join_with_their_cells():
    h, c = torch.randn(3, 6), torch.randn(3, 6)
    lstm = DecoderState([(h, c), (h + 1, c + 1)], feed=torch.randn(3, 2))
    picked = lstm.index_select(torch.tensor([2, 1]))
    assert torch.equal(picked.layers[1][0], (h + 1)[[2, 1]]) and torch.equal(picked.layers[0][1], c[[2, 1]])
    assert torch.equal(picked.feed, lstm.feed[[2, 1]])
    rejoined = DecoderState.cat([lstm.prefix(1), lstm.index_select(torch.tensor([1, 2]))])
    for (h_a, c_a), (h_b, c_b) in zip(rejoined.layers, lstm.layers):
        assert torch.equal(h_a, h_b) and torch.equal(c_a, c_b)
    gru = DecoderState([(h, None)])
    assert gru.index_select(torch.tensor([0])).layers[0][1] is None and gru.prefix(2).feed is None
