"""Parallel corpora of any size made from Multi30k's own sentences, deterministically.

The first pairs are Multi30k's training pairs as they are; beyond its 29,000, each pair is two
distinct Multi30k pairs joined (source after source, target after target), so it is still a
translation, with the words and the length distribution of real text: two Multi30k sentences
have about 24 words, close to a WMT news sentence. The joined pairs are drawn without
repetition from all ordered pairs (i, j), i != j, through a seeded affine bijection of the
29,000² indices, so every generated pair is distinct, any N up to 841 million can be made, and
generation holds nothing but the 29,000 source pairs in memory.

    python benchmarks/scale/corpus.py 2900000 /tmp/scale/corpus-2900000 [--seed 1]
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import random
from pathlib import Path
from typing import Iterator

SIDES = ("de", "en")


def multi30k_train(mirror: Path) -> list[tuple[str, str]]:
    """Multi30k's training pairs (raw, as the mirror holds them)."""
    sides = []
    for lang in SIDES:
        with gzip.open(mirror / "multi30k" / f"train.{lang}.gz", "rt", encoding="utf-8") as handle:
            sides.append([line.rstrip("\n") for line in handle])
    return list(zip(*sides))


def _multiplier(space: int, rng: random.Random) -> int:
    """A seeded multiplier coprime with ``space``: ``k -> (a * k + b) % space`` is then a bijection."""
    while True:
        a = rng.randrange(space // 3, space - 1)
        if math.gcd(a, space) == 1:
            return a


def generate(pairs: list[tuple[str, str]], n: int, seed: int = 1) -> Iterator[tuple[str, str]]:
    """``n`` distinct parallel pairs: ``pairs`` themselves first, then joined pairs (see the module)."""
    m = len(pairs)
    yield from pairs[:n]
    rng = random.Random(seed)
    space = m * m
    a, b = _multiplier(space, rng), rng.randrange(space)
    k, made = 0, min(n, m)
    while made < n:
        index = (a * k + b) % space
        k += 1
        i, j = divmod(index, m)
        if i == j:
            continue
        yield f"{pairs[i][0]} {pairs[j][0]}", f"{pairs[i][1]} {pairs[j][1]}"
        made += 1


def write_corpus(n: int, out_dir: Path, mirror: Path, seed: int = 1) -> dict[str, Path]:
    """Write ``out_dir/train.{de,en}`` with ``n`` pairs; the paths by language."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {lang: out_dir / f"train.{lang}" for lang in SIDES}
    with open(paths["de"], "w", encoding="utf-8") as de, open(paths["en"], "w", encoding="utf-8") as en:
        for src, tgt in generate(multi30k_train(mirror), n, seed):
            de.write(src + "\n")
            en.write(tgt + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", type=int)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mirror", type=Path,
                        default=Path(os.environ.get("S2S_MIRROR", "../shared/corpora").split()[0]))
    args = parser.parse_args()
    write_corpus(args.pairs, args.out_dir, args.mirror, args.seed)


if __name__ == "__main__":
    main()
