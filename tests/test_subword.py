from s2s.config import SpmConfig
from s2s.subword import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabs, train_subword


def train_text(tmp_path):
    from conftest import synthetic_pairs
    pairs = synthetic_pairs(400)
    src, tgt = tmp_path / "train.src", tmp_path / "train.tgt"
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    tgt.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return src, tgt


def test_two_trainings_write_identical_bytes(tmp_path):
    src, tgt = train_text(tmp_path)
    for model_type in ("unigram", "bpe"):
        config = SpmConfig(vocab_size=60, model_type=model_type)
        train_subword(src, tgt, tmp_path / "a", config)
        train_subword(src, tgt, tmp_path / "b", config)
        assert (tmp_path / "a" / "spm.model").read_bytes() == (tmp_path / "b" / "spm.model").read_bytes()
        assert (tmp_path / "a" / "spm.vocab").read_bytes() == (tmp_path / "b" / "spm.vocab").read_bytes()


def test_fixed_special_ids_and_joint_or_separate(tmp_path):
    src, tgt = train_text(tmp_path)
    train_subword(src, tgt, tmp_path / "joint", SpmConfig(vocab_size=60))
    vocabs = Vocabs.load(tmp_path / "joint")
    assert vocabs.joint
    sp = vocabs.src
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    train_subword(src, tgt, tmp_path / "sep", SpmConfig(vocab_size=40, joint=False))
    vocabs = Vocabs.load(tmp_path / "sep")
    assert not vocabs.joint
    assert vocabs.tgt.decode(vocabs.tgt.encode("a dog runs")) == "a dog runs"
    assert UNK_ID in vocabs.src.encode("Ж")


def test_vocabularies_round_trip_through_bytes(tmp_path):
    src, tgt = train_text(tmp_path)
    for joint in (True, False):
        train_subword(src, tgt, tmp_path / str(joint), SpmConfig(vocab_size=40, joint=joint))
        vocabs = Vocabs.load(tmp_path / str(joint))
        again = Vocabs.from_protos(vocabs.to_protos())
        assert again.joint == joint
        assert again.tgt.encode("a dog runs") == vocabs.tgt.encode("a dog runs")


def test_the_sample_is_seeded_in_corpus_order_and_everything_when_the_corpus_is_smaller(tmp_path):
    from s2s.subword import sample_sentences
    src, tgt = train_text(tmp_path)
    every = list(sample_sentences([src, tgt], 0, seed=1))
    assert every == src.read_text().splitlines() + tgt.read_text().splitlines()
    assert list(sample_sentences([src, tgt], 800, seed=1)) == every  # 800 lines: not more than the sample
    sample = list(sample_sentences([src, tgt], 100, seed=1))
    assert len(sample) == 100 and sample == list(sample_sentences([src, tgt], 100, seed=1))
    assert sample != list(sample_sentences([src, tgt], 100, seed=2))
    rest = iter(every)
    assert all(line in rest for line in sample)  # a subsequence: corpus order kept


def test_a_sampled_training_is_byte_identical_across_runs_and_a_large_enough_sample_changes_nothing(tmp_path):
    import dataclasses
    src, tgt = train_text(tmp_path)
    whole = SpmConfig(vocab_size=60, input_sentence_size=0)
    for name, config in (("whole", whole), ("big", dataclasses.replace(whole, input_sentence_size=10_000)),
                         ("s1", dataclasses.replace(whole, input_sentence_size=300)),
                         ("s2", dataclasses.replace(whole, input_sentence_size=300))):
        train_subword(src, tgt, tmp_path / name, config)
    model = lambda name: (tmp_path / name / "spm.model").read_bytes()  # noqa: E731
    assert model("whole") == model("big")
    assert model("s1") == model("s2") and model("s1") != model("whole")


def test_two_trainings_with_two_threads_write_identical_bytes(tmp_path):
    import os
    from s2s.subword import training_threads
    src, tgt = train_text(tmp_path)
    for model_type in ("unigram", "bpe"):
        config = SpmConfig(vocab_size=60, model_type=model_type, threads=2)
        for run in ("a", "b"):
            train_subword(src, tgt, tmp_path / f"{model_type}-{run}", config)
        for ext in (".model", ".vocab"):
            assert (tmp_path / f"{model_type}-a" / f"spm{ext}").read_bytes() == \
                (tmp_path / f"{model_type}-b" / f"spm{ext}").read_bytes()
    assert SpmConfig().threads == 1  # the default: the committed Multi30k model's bytes
    assert training_threads(SpmConfig(threads=0)) == (os.cpu_count() or 1)
    assert training_threads(SpmConfig(threads=3)) == 3
