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
