"""The scale benchmark's corpus generator: deterministic, distinct, parallel pairs of any size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpus_module():
    spec = importlib.util.spec_from_file_location("scale_corpus", ROOT / "benchmarks" / "scale" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAIRS = [((f"quelle {i} " + "wort " * (i % 7)).strip(), (f"source {i} " + "word " * (i % 7)).strip())
         for i in range(40)]


def test_the_originals_come_first_then_distinct_joined_pairs_that_stay_translations():
    corpus = corpus_module()
    made = list(corpus.generate(PAIRS, 1000, seed=3))
    assert len(made) == 1000 and made[:40] == PAIRS
    assert len(set(made)) == 1000  # every pair distinct
    for src, tgt in made[40:]:  # two originals joined on both sides, in the same order
        first, second = src.split(" quelle ")
        assert first.startswith("quelle ") and tgt.startswith("source ")
        a, b = int(first.split()[1]), int(second.split()[0])
        assert a != b and (src, tgt) == (f"{PAIRS[a][0]} {PAIRS[b][0]}", f"{PAIRS[a][1]} {PAIRS[b][1]}")


def test_the_same_seed_gives_the_same_corpus_and_another_seed_another():
    corpus = corpus_module()
    assert list(corpus.generate(PAIRS, 500, seed=1)) == list(corpus.generate(PAIRS, 500, seed=1))
    assert list(corpus.generate(PAIRS, 500, seed=1))[40:] != list(corpus.generate(PAIRS, 500, seed=2))[40:]
    assert list(corpus.generate(PAIRS, 10)) == PAIRS[:10]


def test_every_ordered_pair_can_be_drawn(tmp_path):
    corpus = corpus_module()
    small = PAIRS[:5]
    made = list(corpus.generate(small, 5 + 5 * 4))  # all 20 ordered pairs (i, j), i != j
    assert len(set(made)) == 25
