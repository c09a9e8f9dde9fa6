"""Reading params files: duplicate keys, the source text of what YAML 1.1 misreads, overrides."""

import pytest

from s2s.config import load_params
from s2s.errors import ConfigError
from s2s.params_yaml import apply_overrides, read_params_file


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_source_text_of_misread_scalars_is_kept_by_param_path(tmp_path):
    raw, words = read_params_file(write(tmp_path, "data:\n  src: no\n  test_sets: [010, x]\ntrain:\n  lr: 1e-3\n"))
    assert raw == {"data": {"src": False, "test_sets": [8, "x"]}, "train": {"lr": "1e-3"}}
    assert words == {"data.src": "no", "data.test_sets[0]": "010"}  # strings are not misread: not kept
    raw, words = apply_overrides(raw, words, ["data.src=nb", "model.hidden=0x10"])
    assert raw["data"]["src"] == "nb" and raw["model"]["hidden"] == 16
    assert words == {"data.test_sets[0]": "010", "model.hidden": "0x10"}


def test_an_empty_file_is_an_empty_mapping(tmp_path):
    assert read_params_file(write(tmp_path, "# nothing\n")) == ({}, {})


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\nmodel:\n  hidden: 64\ntrain:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: train: duplicate key \(lines 1 and 5\); YAML would "
                                          r"silently keep only the last one"):
        load_params(path)
    path = write(tmp_path, "train:\n  lr: 0.1\n  seed: 3\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"train\.lr: duplicate key \(lines 2 and 4\)"):
        load_params(path)
    from s2s.config import load_params_with_overrides
    with pytest.raises(ConfigError, match=r"train\.lr: duplicate key \(lines 2 and 4\)"):
        load_params_with_overrides(path, ["model.hidden=64"])
    # A merge key (<<) may be overridden: that is what it is for.
    path = write(tmp_path, "model: &m {hidden: 64, emb: 32}\ntrain: {lr: 0.1}\n")
    assert load_params(path).model.hidden == 64
    path = write(tmp_path, "data:\n  files:\n    base: &f {src: a, tgt: b}\n    train: {<<: *f, tgt: c}\n")
    assert load_params(path).data.files["train"].tgt == "c"




def test_unreadable_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"data:\n  src: \xff\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(.*\); save it as UTF-8"):
        load_params(bad)
    with pytest.raises(ConfigError, match=r"not valid YAML \(expected ',' or '\]', but got '<stream end>' at line 2, "
                                          r"column 1\); fix the syntax") as err:
        load_params(write(tmp_path, "model: [unclosed\n"))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"not valid YAML \(could not determine a constructor"):
        load_params(write(tmp_path, "train:\n  lr: !!python/name:os.system\n"))


