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


@pytest.mark.parametrize("files, message", [
    ({"tsv": "t.tsv", "src": "a"}, r"has both tsv and src; give either src and tgt \(a file per side\) or tsv "
                                   r"\(one file, source<TAB>target per line\), not both$"),
    ({"tsv": "t.tsv", "src": "a", "tgt": "b"}, r"has both tsv and src and tgt; give either src and tgt .*, not both$"),
    ({}, r"no file; give either src and tgt \(a file per side\) or tsv \(one file, source<TAB>target per line\)$"),
    ({"src_sha256": "0" * 64}, r"no file; give either src and tgt"),
    ({"src": "a"}, r"no tgt for its src; give either src and tgt"),
    ({"tgt": "b"}, r"no src for its tgt; give either src and tgt"),
    ({"tsv": "t.tsv", "src_sha256": "0" * 64},
     r"checks no file, data\.files\.train\.src is not given; remove it, or give the file"),
])
def test_custom_files_take_one_form_per_split(files, message):
    with pytest.raises(ConfigError, match=r"^params\.yaml: data\.files\.train(\.src_sha256)?: " + message):
        params_from_dict({"data": {"corpus": "custom", "files": {"train": files}}}, source="params.yaml")


def test_a_tsv_split_loads():
    files = params_from_dict({"data": {"corpus": "custom", "files": {
        "train": {"tsv": "train.tsv.xz", "tsv_sha256": "0" * 64}, "valid": {"src": "v.de", "tgt": "v.en"}}}}).data.files
    assert (files["train"].tsv, files["train"].tsv_sha256, files["train"].src) == ("train.tsv.xz", "0" * 64, "")
    assert files["valid"].tsv == "" and files["valid"].tsv_sha256 is None


def test_ensemble_members_name_a_file_and_its_sha256():
    members = params_from_dict({"eval": {"ensemble": [{"path": "models/seed2.pt", "sha256": "a" * 64}]}}).eval.ensemble
    assert [(m.path, m.sha256) for m in members] == [("models/seed2.pt", "a" * 64)]
    assert params_from_dict({}).eval.ensemble == []
    for member, message in (({"path": "m.pt"}, r"eval\.ensemble\[0\]\.sha256: '' is not a sha256; .*`sha256sum m\.pt`"),
                            ({"sha256": "a" * 64}, r"eval\.ensemble\[0\]\.path: no model file given"),
                            ({"path": "m.pt", "sha": "a"}, r"eval\.ensemble\[0\]\.sha: unknown parameter; did you mean")):
        with pytest.raises(ConfigError, match=message):
            params_from_dict({"eval": {"ensemble": [member]}}, source="params.yaml")


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


def test_new_knobs_have_their_defaults_and_old_models_params_still_load():
    params = params_from_dict({})
    assert params.clean.max_chars == 1000 and params.tensorize.max_pieces == 250
    # A model saved before `tensorize` and `clean.max_chars` existed: its params dict lacks them.
    saved = params_to_dict(Params())
    del saved["tensorize"], saved["clean"]["max_chars"]
    assert params_from_dict(saved, source="models/model.pt") == Params()
    assert params_from_dict({"tensorize": {"max_pieces": 16}}).tensorize.max_pieces == 16
    with pytest.raises(ConfigError, match=r"tensorize\.max_pieces: 0 is out of range; expected \[1, 100000\]"):
        params_from_dict({"tensorize": {"max_pieces": 0}})
    with pytest.raises(ConfigError, match=r"clean\.max_chars: 0 is out of range; expected >= 1"):
        params_from_dict({"clean": {"max_chars": 0}})
    assert list(params_to_dict(Params()))[2:4] == ["spm", "tensorize"]


@pytest.mark.parametrize("raw, message", [
    ({"data": {"test_sets": ["../evil"]}},
     r"^params\.yaml: data\.test_sets\[0\]: '\.\./evil' is not a valid split name; use letters, digits, '_' and '-' "
     r"\(it names files under data/\)$"),
    ({"data": {"test_sets": ["test", "a/b"]}}, r"data\.test_sets\[1\]: 'a/b' is not a valid split name"),
    ({"data": {"test_sets": [""]}}, r"data\.test_sets\[0\]: '' is not a valid split name"),
    ({"data": {"corpus": "../x"}}, r"data\.corpus: '\.\./x' is not a valid corpus name; use letters"),
    ({"data": {"src": "de/.."}}, r"data\.src: 'de/\.\.' is not a valid language code; use letters"),
    ({"data": {"tgt": ".en"}}, r"data\.tgt: '\.en' is not a valid language code"),
    ({"data": {"corpus": "custom", "files": {"../x": {"src": "a", "tgt": "b"}}}},
     r"data\.files: '\.\./x' is not a valid split name; use letters, digits, '_' and '-' \(it names files"),
    ({"data": {"test_sets": ["train"]}},
     r"data\.test_sets\[0\]: 'train' is the training split, not a test set: its files under data/ would be "
     r"overwritten; remove it"),
    ({"data": {"test_sets": ["test", "valid"]}},
     r"data\.test_sets\[1\]: 'valid' is the validation split, which is always evaluated: its outputs would be "
     r"written twice; remove it"),
    ({"data": {"test_sets": ["Valid"]}}, r"'Valid' is the validation split.*differ only in case"),
    ({"data": {"test_sets": ["a", "b", "a"]}}, r"data\.test_sets\[2\]: 'a' repeats data\.test_sets\[0\].*list each "
                                               r"test set once"),
    ({"data": {"files": {"t": {"src": "a", "tgt": "b", "tgt_sha256": "ABC"}}}},
     r"data\.files\.t\.tgt_sha256: 'ABC' is not a sha256; give 64 lowercase hex digits"),
    ({"data": {"files": {"t": {"tsv": "t.tsv", "tsv_sha256": "0" * 63}}}},
     r"data\.files\.t\.tsv_sha256: '0{63}' is not a sha256; give 64 lowercase hex digits"),
])
def test_names_that_become_file_names_stay_under_data(raw, message):
    with pytest.raises(ConfigError, match=message):
        params_from_dict(raw, source="params.yaml")


def test_valid_names_still_load():
    params = params_from_dict({"data": {"corpus": "custom", "src": "pt-BR", "tgt": "zh_Hans",
                                        "test_sets": ["test", "test-2017", "2018"],
                                        "files": {"train": {"src": "a/../b.gz", "tgt": "b", "src_sha256": "0" * 64}}}})
    assert params.data.test_sets == ["test", "test-2017", "2018"]
    assert params_from_dict({"data": {"test_sets": []}}).data.test_sets == []


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml11_exponent_without_a_dot_is_a_float(tmp_path):
    from s2s.config import load_params_with_overrides
    path = write(tmp_path, "train:\n  lr: 1e-3\n  min_lr: 1e-6\n")
    params = load_params(path)
    assert params.train.lr == 0.001 and isinstance(params.train.lr, float) and params.train.min_lr == 1e-6
    assert load_params_with_overrides(path, ["train.lr=5e-4"]).train.lr == 0.0005
    assert params_from_dict({"eval": {"max_len_a": "2"}}).eval.max_len_a == 2.0
    with pytest.raises(ConfigError, match=r"train\.lr: expected float, got 'inf' \(str\)"):
        params_from_dict({"train": {"lr": "inf"}})
    with pytest.raises(ConfigError, match=r"train\.clip_grad: inf is not finite; give a finite value"):
        params_from_dict({"train": {"clip_grad": float("inf")}})
    with pytest.raises(ConfigError, match=r"model\.hidden: expected int, got '1e3' \(str\); quote-free integer "
                                          r"expected, e.g\. 1000"):
        load_params(write(tmp_path, "model:\n  hidden: 1e3\n"))
    with pytest.raises(ConfigError, match=r"model\.hidden: expected int, got '512' \(str\); quote-free integer"):
        params_from_dict({"model": {"hidden": "512"}})
    with pytest.raises(ConfigError, match=r"model\.hidden: expected int, got 512\.0 \(float\); a whole number is "
                                          r"needed, e\.g\. 512"):
        params_from_dict({"model": {"hidden": 512.0}})


def test_yaml11_misreadings_say_what_to_write(tmp_path):
    cases = [
        ("data:\n  src: no\n", r"data\.src: expected str, got False \(bool\); write 'no' in quotes: YAML reads no "
                               r"as a boolean$"),
        ("data:\n  test_sets: [test, off]\n", r"data\.test_sets\[1\]: expected str, got False \(bool\); write 'off' "
                                              r"in quotes: YAML reads off as a boolean"),
        ("model:\n  cell: ON\n", r"model\.cell: .*write 'ON' in quotes: YAML reads ON as a boolean"),
        ("data:\n  test_sets: [010]\n", r"data\.test_sets\[0\]: expected str, got 8 \(int\); write '010' in quotes"),
        ("data:\n  test_sets: 2016\n", r"data\.test_sets: expected a list, got 2016 \(int\); write \['2016'\] for "
                                       r"one entry"),
        ("data:\n  test_sets:\n", r"data\.test_sets: expected a list, got null; write \[\] for none"),
        ("data:\n  src:\n", r"data\.src: no value \(null\), a str is needed; give one, or remove the key to use "
                            r"the default"),
        ("train:\n  lr: ~\n", r"train\.lr: no value \(null\), a float is needed"),
        ("train:\n", r"train: empty section \(null\); give its keys, or remove it to use the defaults"),
        ("train: 5\n", r"train: expected a mapping of keys, got 5 \(int\)"),
        ("- a\n", r"params: expected a mapping of keys, got \['a'\] \(list\)"),
        ("train:\n  seed: 010\n", r"train\.seed: YAML 1\.1 reads 010 as the octal number 8; write it without the "
                                  r"leading 0"),
        ("train:\n  seed: 1:30\n", r"train\.seed: YAML 1\.1 reads 1:30 as the base-60 number 90"),
        ("model:\n  bidirectional: 'true'\n", r"model\.bidirectional: expected bool, got 'true' \(str\); write true "
                                              r"or false, without quotes"),
        ("model:\n  hidden: yes\n", r"model\.hidden: expected int, got True \(bool\); YAML reads yes as a boolean"),
        ("data:\n  files:\n    yes: {src: a, tgt: b}\n", r"data\.files: key True \(bool\) is a boolean .*write the "
                                                          r"key in quotes"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_params(write(tmp_path, text))
    assert load_params(write(tmp_path, "data:\n  src: 'no'\n  tgt: en\n  test_sets: ['010']\n")).data.src == "no"
    with pytest.raises(ConfigError, match=r"data\.src: expected str, got False \(bool\); write the text in quotes: "
                                          r"YAML reads no, off and false as booleans"):
        params_from_dict({"data": {"src": False}})  # no source text to quote: the possible words


def test_yaml11_misreadings_in_overrides(tmp_path):
    from s2s.config import load_params_with_overrides
    path = write(tmp_path, "data:\n  src: de\n")
    with pytest.raises(ConfigError, match=r"data\.src: expected str, got False \(bool\); write 'no' in quotes"):
        load_params_with_overrides(path, ["data.src=no"])
    assert load_params_with_overrides(path, ["data.src=nb", "data.tgt='no'"]).data.tgt == "no"
    with pytest.raises(ConfigError, match=r"override 'model\.hidden=\[1': the value is not valid YAML \(.* at line "
                                          r"1, column 3\); quote it"):
        load_params_with_overrides(path, ["model.hidden=[1"])
    with pytest.raises(ConfigError, match=r"data\.files\.a: duplicate key \(twice on line 1\)"):
        load_params_with_overrides(path, ["data.files={a: {src: x}, a: {src: y}}"])
    with pytest.raises(ConfigError, match=r"params: expected a mapping of keys"):  # not an AttributeError
        load_params_with_overrides(write(tmp_path, "- a\n"), ["model.hidden=8"])


def test_values_that_cannot_work_together():
    with pytest.raises(ConfigError, match=r"eval\.max_len_b: 0 with eval\.max_len_a: 0\.0 allows no output token.*"
                                          r"every translation would be empty; raise eval\.max_len_b"):
        params_from_dict({"eval": {"max_len_a": 0, "max_len_b": 0}})
    with pytest.raises(ConfigError, match=r"eval\.max_len_b: 0 with eval\.max_len_a: 0\.001 allows no output token"):
        params_from_dict({"eval": {"max_len_a": 0.001, "max_len_b": 0}})
    assert params_from_dict({"eval": {"max_len_a": 0, "max_len_b": 1}}).eval.max_len_b == 1
    assert params_from_dict({"eval": {"max_len_a": 1.0, "max_len_b": 0}}).eval.max_len_a == 1.0
    with pytest.raises(ConfigError, match=r"train\.min_lr: 0\.01 is above train\.lr 0\.002, so the plateau schedule "
                                          r"could never lower the lr; set train\.min_lr below train\.lr, or "
                                          r"train\.lr_schedule: constant"):
        params_from_dict({"train": {"min_lr": 0.01}})
    for schedule in ("constant", "inverse_sqrt"):  # min_lr is the plateau schedule's floor only
        assert params_from_dict({"train": {"min_lr": 0.01, "lr_schedule": schedule}}).train.min_lr == 0.01
    assert params_from_dict({"train": {"min_lr": 0.002}}).train.min_lr == 0.002
    with pytest.raises(ConfigError, match=r"train\.precision: bf16 autocast needs CUDA, and train\.device is cpu; "
                                          r"set train\.precision: auto or fp32, or train\.device: cuda"):
        params_from_dict({"train": {"precision": "bf16", "device": "cpu"}})
    assert params_from_dict({"train": {"precision": "bf16"}}).train.device == "auto"
    # warmup_steps matters to inverse_sqrt only; an unused value is no error.
    assert params_from_dict({"train": {"warmup_steps": 1, "lr_schedule": "plateau"}}).train.warmup_steps == 1
    with pytest.raises(ConfigError, match=r"data\.tgt: equals data\.src"):
        params_from_dict({"data": {"src": "de", "tgt": "DE"}})
