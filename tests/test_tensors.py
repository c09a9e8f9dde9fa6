import numpy as np
import pytest
import torch

from s2s.subword import BOS_ID, EOS_ID, PAD_ID
from s2s.tensors import ParallelData, TensorError, arrays_digest, collate, pack, token_batches


def test_pack_flattens_ids_and_offsets():
    ids, offsets = pack([[5, 6, 7], [8], [9, 10]])
    assert ids.dtype == np.int32 and ids.tolist() == [5, 6, 7, 8, 9, 10] and offsets.tolist() == [0, 3, 4, 6]
    data = make_data([[5, 6, 7], [8], [9, 10]], [[11], [12, 13], [14]])
    assert [data.src(i).tolist() for i in range(3)] == [[5, 6, 7], [8], [9, 10]] and data.tgt_lens.tolist() == [1, 2, 1]


def make_data(src_seqs, tgt_seqs) -> ParallelData:
    src, src_off = pack(src_seqs)
    tgt, tgt_off = pack(tgt_seqs)
    return ParallelData({"src": src, "src_offsets": src_off, "tgt": tgt, "tgt_offsets": tgt_off})


def test_a_split_opens_memory_mapped_and_read_only(tiny_project):
    data = ParallelData.load(tiny_project.split_tensors("valid"))
    assert isinstance(data.src_ids, np.memmap) and isinstance(data.tgt_offsets, np.memmap)
    assert data.src_ids.dtype == np.int32 and data.src_offsets.dtype == np.int64
    assert data.src_offsets[0] == 0 and data.src_offsets[-1] == len(data.src_ids)
    with pytest.raises(ValueError, match="read-only"):
        data.src_ids[0] = 7
    assert data.digest == arrays_digest({"src": data.src_ids, "src_offsets": data.src_offsets,
                                         "tgt": data.tgt_ids, "tgt_offsets": data.tgt_offsets})


def test_memory_mapped_data_gives_the_same_batches_as_in_memory(tiny_project):
    mapped = ParallelData.load(tiny_project.split_tensors("train"))
    in_memory = ParallelData({name: np.array(getattr(mapped, attr)) for name, attr in
                              (("src", "src_ids"), ("src_offsets", "src_offsets"), ("tgt", "tgt_ids"),
                               ("tgt_offsets", "tgt_offsets"))})
    assert not isinstance(in_memory.src_ids, np.memmap) and in_memory.digest == mapped.digest
    mapped_order = token_batches(mapped.src_lens, mapped.tgt_lens, 400, np.random.default_rng(3), 2)
    memory_order = token_batches(in_memory.src_lens, in_memory.tgt_lens, 400, np.random.default_rng(3), 2)
    assert len(mapped_order) == len(memory_order)
    assert all(np.array_equal(x, y) for x, y in zip(mapped_order, memory_order))
    for indices in mapped_order:
        batch_a, batch_b = collate(mapped, indices), collate(in_memory, indices)
        for field in ("src", "src_lens", "tgt_in", "tgt_out"):
            assert torch.equal(getattr(batch_a, field), getattr(batch_b, field))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TensorError, match="run `dvc repro tensorize`"):
        ParallelData.load(tmp_path / "none")


def test_tensors_of_an_older_format_or_damaged_are_a_clear_error(tiny_project, tmp_path):
    torch.save({"src": torch.zeros(3, dtype=torch.int32)}, tmp_path / "valid.pt")
    with pytest.raises(TensorError, match=r"valid: tensors in the format of an older s2s .*dvc repro tensorize"):
        ParallelData.load(tmp_path / "valid")
    valid = tiny_project.split_tensors("valid")
    (valid / "tgt.npy").write_bytes((valid / "tgt.npy").read_bytes()[:200])
    with pytest.raises(TensorError, match=r"valid: .*(damaged|do not match).*dvc repro tensorize"):
        ParallelData.load(valid)


def test_collate_adds_bos_eos_and_pads():
    data = make_data([[5, 6], [7]], [[8], [9, 10, 11]])
    batch = collate(data, np.array([0, 1]))
    assert batch.src.tolist() == [[5, 6, EOS_ID], [7, EOS_ID, PAD_ID]]
    assert batch.src_lens.tolist() == [3, 2]
    assert batch.tgt_in.tolist() == [[BOS_ID, 8, PAD_ID, PAD_ID], [BOS_ID, 9, 10, 11]]
    assert batch.tgt_out.tolist() == [[8, EOS_ID, PAD_ID, PAD_ID], [9, 10, 11, EOS_ID]]
    assert batch.n_tgt_tokens == 6


def test_token_batches_cover_everything_once_within_budget():
    rng = np.random.default_rng(0)
    src_lens, tgt_lens = rng.integers(1, 40, 500), rng.integers(1, 40, 500)
    for order_rng, pool in ((None, 0), (np.random.default_rng(1), 0), (np.random.default_rng(1), 4)):
        batches = token_batches(src_lens, tgt_lens, 300, order_rng, pool)
        assert sorted(np.concatenate(batches).tolist()) == list(range(500))
        for b in batches:
            width = int(np.maximum(src_lens[b], tgt_lens[b]).max()) + 1
            assert len(b) * width <= 300 or len(b) == 1


def test_token_batches_are_length_bucketed_and_seeded():
    rng = np.random.default_rng(0)
    lens = rng.integers(1, 60, 2000)
    batches = token_batches(lens, lens, 500, np.random.default_rng(3))
    padding = sum(int(lens[b].max()) * len(b) - int(lens[b].sum()) for b in batches)
    assert padding / lens.sum() < 0.05
    again = token_batches(lens, lens, 500, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def _batch_mates(batches: list[np.ndarray]) -> dict[int, frozenset]:
    return {int(i): frozenset(b.tolist()) for b in batches for i in b}


def test_pooled_batches_change_their_mates_each_epoch_and_stay_bucketed():
    rng = np.random.default_rng(0)
    lens = rng.integers(1, 60, 4000)
    # Whole-corpus sorting: sentences of one length keep meeting each other (only ties are reshuffled).
    whole = [_batch_mates(token_batches(lens, lens, 500, np.random.default_rng(e))) for e in (1, 2)]
    pooled = [_batch_mates(token_batches(lens, lens, 500, np.random.default_rng(e), 10)) for e in (1, 2)]
    def shared_mates(epochs):
        return np.mean([len(epochs[0][i] & epochs[1][i]) / len(epochs[0][i]) for i in range(4000)])
    assert shared_mates(pooled) < 0.5 * shared_mates(whole)
    # Sorted within a pool of 10 batches, a batch still spans only a slice of the lengths.
    batches = token_batches(lens, lens, 500, np.random.default_rng(1), 10)
    padding = sum(int(lens[b].max()) * len(b) - int(lens[b].sum()) for b in batches)
    assert padding / lens.sum() < 0.25
    spread = np.mean([int(lens[b].max() - lens[b].min()) for b in batches])
    assert spread < 10  # of 1..59


def test_pool_is_ignored_when_decoding_in_length_order():
    lens = np.random.default_rng(0).integers(1, 60, 1000)
    plain = token_batches(lens, lens, 500)
    assert all(np.array_equal(a, b) for a, b in zip(plain, token_batches(lens, lens, 500, None, 10)))


def test_a_batch_of_k_buckets_holds_what_k_accumulated_batches_would():
    lens = np.random.default_rng(0).integers(1, 60, 2000)
    joined = token_batches(lens, lens, 2000, np.random.default_rng(5), buckets_per_batch=4)
    chunks = token_batches(lens, lens, 500, np.random.default_rng(5))
    assert len(joined) == -(-len(chunks) // 4)
    for batch, start in zip(joined, range(0, len(chunks), 4)):
        assert np.array_equal(batch, np.concatenate(chunks[start:start + 4]))
    # the lengths mix within a batch, each chunk still sorted
    assert np.mean([int(lens[b].max() - lens[b].min()) for b in joined]) > 20
    decoding = token_batches(lens, lens, 2000, None, buckets_per_batch=4)  # no mixing when decoding
    assert [b.tolist() for b in decoding] == [b.tolist() for b in token_batches(lens, lens, 2000)]


def test_tensors_record_their_vocabulary_and_refuse_another(tiny_project, tmp_path):
    import dataclasses

    from s2s.config import SpmConfig
    from s2s.subword import Vocabs, train_subword
    data = ParallelData.load(tiny_project.split_tensors("valid"))
    vocabs = Vocabs.load(tiny_project.spm)
    assert data.vocab == vocabs.fingerprint() and len(data.vocab) == 64
    data.require_vocabulary(vocabs, "data/spm", "rerun")
    train_subword(tiny_project.clean / "train.src", tiny_project.clean / "train.tgt", tmp_path,
                  dataclasses.replace(SpmConfig(), vocab_size=50))
    with pytest.raises(TensorError, match=r"valid: made with another vocabulary than other's; .* Run it"):
        data.require_vocabulary(Vocabs.load(tmp_path), "other", "Run it")
    unrecorded = ParallelData({"src": data.src_ids, "src_offsets": data.src_offsets, "tgt": data.tgt_ids,
                               "tgt_offsets": data.tgt_offsets}, tmp_path / "old")
    with pytest.raises(TensorError, match="by an older s2s"):
        unrecorded.require_vocabulary(vocabs, "data/spm", "rerun")


def test_lengths_are_read_in_chunks_as_int32_and_batches_hold_int32_indices(tiny_project):
    from s2s.tensors import _lengths
    data = ParallelData.load(tiny_project.split_tensors("train"))
    for side, lengths in (("src", data.src_lens), ("tgt", data.tgt_lens)):
        offsets = np.load(tiny_project.split_tensors("train") / f"{side}_offsets.npy")
        assert lengths.dtype == np.int32 and np.array_equal(lengths, np.diff(offsets))
        for chunk in (1, 7, 1000):
            assert np.array_equal(_lengths(tiny_project.split_tensors("train") / f"{side}_offsets.npy", chunk),
                                  lengths)
    batches = token_batches(data.src_lens, data.tgt_lens, 300, np.random.default_rng(0), 2)
    assert all(b.dtype == np.int32 for b in batches)
