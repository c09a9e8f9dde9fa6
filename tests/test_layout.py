from pathlib import Path

import yaml

from conftest import ROOT
from s2s.layout import Layout


def test_the_outputs_in_dvc_yaml_are_the_paths_of_the_layout():
    """dvc.yaml and the stage scripts agree on every output path: both spell the layout's."""
    layout = Layout(ROOT)
    spelled = {layout.raw, layout.clean, layout.spm, layout.tensors, layout.model, layout.last_checkpoint,
               layout.train_plots, layout.attention_plots, layout.outputs,
               *(layout.metrics / f"{name}.json" for name in ("data", "train", "speed", "eval", "decode_speed"))}
    declared = set()
    for spec in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values():
        for out in spec["outs"]:
            declared.add(ROOT / (next(iter(out)) if isinstance(out, dict) else out))
    assert declared == spelled


def test_paths_are_under_the_root():
    layout = Layout(Path("/project"))
    assert layout.raw_corpus("multi30k") == Path("/project/data/raw/multi30k")
    assert layout.split_tensors("test_2016_flickr") == Path("/project/data/tensors/test_2016_flickr")
    assert layout.params == Path("/project/params.yaml")
