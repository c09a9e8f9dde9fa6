from pathlib import Path

import pytest

from s2s.config import ConfigError, ModelConfig, Params, load_params, params_from_dict, params_to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_load_and_cover_every_field():
    params = load_params(ROOT / "params.yaml")
    assert params.data.corpus == "multi30k" and params.model.cell == "gru"
    # params.yaml spells out every knob, so `dvc params diff` shows them all.
    import yaml
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw == params_to_dict(params)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"model\.hiden: unknown parameter; did you mean model\.hidden\?"):
        params_from_dict({"model": {"hiden": 512}})


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"trian: unknown parameter; did you mean train\?"):
        params_from_dict({"trian": {}})


@pytest.mark.parametrize("raw, message", [
    ({"model": {"hidden": "big"}}, r"model\.hidden: expected int, got 'big'"),
    ({"model": {"hidden": 5.5}}, r"model\.hidden: expected int"),
    ({"model": {"bidirectional": 1}}, r"model\.bidirectional: expected bool"),
    ({"train": {"lr": "fast"}}, r"train\.lr: expected float"),
    ({"data": {"test_sets": "test"}}, r"data\.test_sets: expected a list"),
])
def test_wrong_types_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        params_from_dict(raw)


@pytest.mark.parametrize("raw, message", [
    ({"model": {"dropout": 1.5}}, r"model\.dropout: 1\.5 is out of range"),
    ({"model": {"cell": "rnn"}}, r"model\.cell: 'rnn' is not one of gru, lstm"),
    ({"train": {"max_epochs": 0}}, r"train\.max_epochs: 0 is out of range"),
    ({"clean": {"normalization": "NFD"}}, r"clean\.normalization: 'NFD' is not one of"),
])
def test_out_of_range_values_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        params_from_dict(raw)


def test_cross_field_checks():
    with pytest.raises(ConfigError, match=r"data\.tgt: equals data\.src"):
        params_from_dict({"data": {"src": "en", "tgt": "en"}})
    with pytest.raises(ConfigError, match=r"model\.hidden: must be even"):
        params_from_dict({"model": {"hidden": 33}})
    with pytest.raises(ConfigError, match=r"model\.share_src_tgt_embeddings: needs one vocabulary.*spm\.joint: true"):
        params_from_dict({"model": {"share_src_tgt_embeddings": True}, "spm": {"joint": False}})
    with pytest.raises(ConfigError, match=r"model\.input_feeding: .*set model\.attention: luong"):
        params_from_dict({"model": {"input_feeding": True}})
    with pytest.raises(ConfigError, match=r"model\.attention_score: additive .*model\.input_feeding: true"):
        params_from_dict({"model": {"attention": "luong", "attention_score": "additive"}})
    assert params_from_dict({"model": {"attention": "luong", "attention_score": "additive",
                                       "input_feeding": True}}).model.input_feeding
    with pytest.raises(ConfigError, match=r"train\.buckets_per_batch: 200 chunks of train\.batch_tokens 2500 "
                                          r"leave 12 tokens each, below 16; lower train\.buckets_per_batch"):
        params_from_dict({"train": {"buckets_per_batch": 200}})
    assert params_from_dict({"train": {"buckets_per_batch": 156}}).train.buckets_per_batch == 156
    with pytest.raises(ConfigError, match=r"train\.average_last: 1 averages a single epoch"):
        params_from_dict({"train": {"average_last": 1}})


def test_defaults_fill_missing_keys_and_ints_count_as_floats():
    params = params_from_dict({"train": {"lr": 1}})
    assert params.train.lr == 1.0 and isinstance(params.train.lr, float)
    assert params.model == ModelConfig()
    assert params_from_dict({}) == Params()


def test_custom_corpus_files_are_typed():
    params = params_from_dict({"data": {"corpus": "custom", "files": {"train": {"src": "a", "tgt": "b"}}}})
    assert params.data.files["train"].src == "a" and params.data.files["train"].src_sha256 is None
    with pytest.raises(ConfigError, match=r"data\.files\.train\.sorce: unknown parameter; did you mean"):
        params_from_dict({"data": {"files": {"train": {"sorce": "a"}}}})


def test_missing_and_malformed_files(tmp_path):
    from s2s.config import load_params_with_overrides
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    for load in (load_params, lambda path: load_params_with_overrides(path, ["model.hidden=8"])):
        with pytest.raises(ConfigError, match="params file not found"):  # not a silent run on the defaults
            load(tmp_path / "nope.yaml")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load(bad)


def test_nan_is_rejected():
    with pytest.raises(ConfigError, match=r"train\.lr: nan is not a number"):
        params_from_dict({"train": {"lr": float("nan")}})


def test_overrides_like_dvc_set_param(tmp_path):
    from s2s.config import load_params_with_overrides
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  hidden: 64\n")
    params = load_params_with_overrides(path, ["model.hidden=128", "train.lr=0.01", "model.cell=lstm"])
    assert (params.model.hidden, params.train.lr, params.model.cell) == (128, 0.01, "lstm")
    with pytest.raises(ConfigError, match=r"model\.hiden: unknown parameter"):
        load_params_with_overrides(path, ["model.hiden=1"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_params_with_overrides(path, ["model.hidden"])


def test_the_defaults_are_the_committed_params_yaml():
    """One source of truth: a params file that leaves a key out gets the default experiment's value."""
    import yaml

    from conftest import ROOT
    committed = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert params_to_dict(Params()) == committed
