import dataclasses
import typing

import yaml

from conftest import ROOT
from s2s.config import Params
from s2s.params_reference import params_reference


def test_every_param_is_in_the_reference_with_its_default():
    reference = params_reference()
    for section in dataclasses.fields(Params):
        config = typing.get_type_hints(Params)[section.name]()
        for field in dataclasses.fields(config):
            row = next(line for line in reference.splitlines() if line.startswith(f"| `{section.name}.{field.name}` |"))
            default = yaml.safe_dump(getattr(config, field.name), default_flow_style=True).removesuffix("\n...\n").strip()
            assert f"| `{default}` |" in row, row
            assert field.metadata["doc"].replace("|", "/") in row


def test_choices_and_ranges_are_listed():
    reference = params_reference()
    assert "| `model.cell` | str | `gru` | `gru` \\| `lstm` |" in reference
    assert "| `train.label_smoothing` | float | `0.1` | 0.0 … 0.9 |" in reference
    assert "| `data.files.<split>.src_sha256` | str or null | `null` |" in reference


def test_the_committed_reference_is_current():
    committed = (ROOT / "docs" / "params.md").read_text(encoding="utf-8")
    assert committed == params_reference(), "docs/params.md is stale: run `s2s info --markdown > docs/params.md`"
