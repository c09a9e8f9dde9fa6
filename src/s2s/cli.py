"""The ``s2s`` command: ``translate``, ``compare``, ``bench`` and ``info``.

The pipeline stages are not here: ``dvc.yaml`` runs ``python stages/<name>.py``.
Errors a user can fix end with one line on stderr and exit code 1 (``--debug`` or
``S2S_DEBUG=1``: with the traceback).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional

import typer

from s2s.errors import DEBUG_ENV, S2SError, report_faults

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Reproducible RNN attention machine translation (DVC, SentencePiece, sacreBLEU).")

ParamsOption = typer.Option(Path("params.yaml"), "--params", help="params file")
RootOption = typer.Option(Path("."), "--root", help="project root (where data/, models/, metrics/ live)")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@app.callback()
def options(debug: bool = typer.Option(False, "--debug", help=f"show the full traceback of an error "
                                                               f"(as {DEBUG_ENV}=1 does)")) -> None:
    """Reproducible RNN attention machine translation (DVC, SentencePiece, sacreBLEU)."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


def _run(action: Callable[[], None]) -> None:
    """Run ``action``; a fault a user can fix (bad input, a full disk, an unwritable path) becomes one
    ``error:`` line and exit code 1, without a traceback unless ``--debug``."""
    _setup_logging()
    report_faults(action, _exit)


@app.command()
def translate(model: list[Path] = typer.Option([Path("models/model.pt")], "--model", "-m",
                                              help="checkpoint; give it again for an ensemble (-m a.pt -m b.pt: "
                                                   "the mean of their probabilities at every step)"),
              input: Optional[Path] = typer.Option(None, "--input", "-i", help="input file (default stdin)"),
              output: Optional[Path] = typer.Option(None, "--output", "-o", help="output file (default stdout)"),
              batch_size: int = typer.Option(64, "--batch-size", min=1, help="sentences per batch"),
              beam: Optional[int] = typer.Option(None, "--beam", min=1,
                                                 help="beam size (default: eval.beam the model was trained with)"),
              nbest: int = typer.Option(1, "--nbest", min=1,
                                        help="print the N best, Moses style: 'line ||| text ||| score'"),
              max_src_len: Optional[int] = typer.Option(
                  None, "--max-src-len", min=1,
                  help="truncate longer inputs (in pieces), with a warning (default: tensorize.max_pieces "
                       "the model was trained with)"),
              chunk_lines: Optional[int] = typer.Option(
                  None, "--chunk-lines", min=1,
                  help="lines read, translated and written at a time (default: 16 batches)"),
              device: str = typer.Option("auto", "--device", help="auto, cpu or cuda")) -> None:
    """Translate raw text, one sentence per line, keeping the order.

    Streamed: each chunk of lines is translated and written (stdout flushed) before the next is read.

    Several --model files decode as one ensemble; they must share their SentencePiece models, and
    the first one's params (normalisation, length limits, beam) apply.

    --output FILE is written as FILE.part, renamed when all the input is done (an error keeps the old FILE).
    """
    from s2s.checkpoint import load_models
    from s2s.config import Params, params_from_dict
    from s2s.device import resolve_device
    from s2s.search import LengthLimit
    from s2s.subword import Vocabs
    from s2s.textio import iter_lines, stream_lines, write_line_chunks
    from s2s.translator import Translator, moses_nbest

    def action() -> None:
        if input is not None and not input.is_file():
            raise S2SError(f"--input {input}: no such file; give the path of a text file, or pipe the text to stdin")
        net, checkpoint = load_models(model, resolve_device(device, "--device"))
        params: Params = params_from_dict(checkpoint["params"], source=str(model[0]))
        translator = Translator(net, Vocabs.from_protos(checkpoint["spm"]),
                                LengthLimit.from_eval(params.eval),
                                batch_size, params.clean.normalization,
                                beam=beam or params.eval.beam, len_penalty=params.eval.len_penalty,
                                max_src_len=params.tensorize.max_pieces if max_src_len is None else max_src_len)
        lines = stream_lines(input) if input else iter_lines(sys.stdin.buffer, "stdin")
        progress = sys.stderr.isatty()
        if nbest > 1:
            chunks = moses_nbest(translator.nbest_stream(lines, nbest, chunk_lines, progress))
        else:
            chunks = translator.translate_stream(lines, chunk_lines, progress)
        write_line_chunks(chunks, output)
    _run(action)


@app.command()
def bench(params: Path = ParamsOption, root: Path = RootOption,
          overrides: list[str] = typer.Option([], "--set-param", "-S", help="override a param: key.path=value"),
          model: Optional[Path] = typer.Option(None, "--model", "-m",
                                               help="trained model for the decoding figures (default: models/model.pt "
                                                    "if it matches the params, else the untrained model)"),
          steps: int = typer.Option(30, "--steps", min=1, help="timed training steps (after 5 warm-up steps)"),
          nproc: int = typer.Option(1, "--nproc", min=1,
                                    help="also time training in this many data-parallel processes (DDP) against "
                                         "one process with their hardware: on the CPU their threads together, "
                                         "on CUDA one GPU"),
          out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the figures as JSON here")) -> None:
    """Measure training and decoding speed of the current params on the real data."""
    from s2s.bench import bench as run_bench
    from s2s.bench import format_table, scaling
    from s2s.distributed import World, threads_per_process
    from s2s.checkpoint import load_model
    from s2s.config import load_params_with_overrides
    from s2s.device import resolve_device, set_threads
    from s2s.layout import Layout
    from s2s.subword import Vocabs
    from s2s.tensors import ParallelData
    from s2s.textio import write_json

    def action() -> None:
        config = load_params_with_overrides(params, overrides)
        layout = Layout(root)
        device = resolve_device(config.train.device)
        per_process = threads_per_process(config.train.threads, World(0, 0, nproc, nproc))
        set_threads(per_process * nproc if device.type == "cpu" else config.train.threads)
        vocabs = Vocabs.load(layout.spm)
        trained = None
        model_path = model or layout.model
        if model_path.exists():
            net, checkpoint = load_model(model_path, device)
            same_vocabulary = Vocabs.from_protos(checkpoint["spm"]).fingerprint() == vocabs.fingerprint()
            if net.config == config.model and same_vocabulary:  # an older checkpoint's new knobs: defaults
                trained = net
        decode_split = config.data.test_sets[0] if config.data.test_sets else "valid"
        train_data, decode_data = (ParallelData.load(layout.split_tensors(s)) for s in ("train", decode_split))
        for data in (train_data, decode_data):
            data.require_vocabulary(vocabs, str(layout.spm), "Run `dvc repro tensorize` first")
        result = run_bench(config, train_data, decode_data, vocabs, device, trained, steps=steps)
        if nproc > 1:
            result.scaling = scaling(config, str(layout.root), result, nproc, steps=steps)
        typer.echo(format_table(result) + ("" if trained else "\n(decoding figures are of an untrained model)"))
        if out:
            write_json(out, {**result.to_dict(), "trained_model_for_decoding": trained is not None})
    _run(action)


@app.command()
def compare(against: list[str] = typer.Option(["main"], "--against",
                                              help="the baseline: a git revision (branch, tag, commit) or a dvc exp "
                                                   "name; give it again for several runs (e.g. seeds)"),
            candidate: list[str] = typer.Option([], "--candidate",
                                                help="the candidate's revisions or experiments (default: the "
                                                     "workspace); give it again for several runs"),
            root: Path = RootOption,
            md: bool = typer.Option(False, "--md", help="print a Markdown table (for CI summaries)"),
            out: Optional[Path] = typer.Option(None, "--out", help="also write the figures as JSON"),
            resamples: int = typer.Option(1000, "--resamples", min=10, help="paired bootstrap resamples"),
            trials: int = typer.Option(10000, "--trials", min=10, help="approximate randomization trials"),
            seed: int = typer.Option(12345, "--seed", help="seed of both tests' random draws")) -> None:
    """Compare the workspace's evaluated outputs with another revision's: BLEU, chrF and TER of each
    set both have, the difference, its 95% paired-bootstrap interval and the p-values of paired
    bootstrap and approximate randomization.

    With several runs on a side (--against A --against B ..., --candidate C --candidate D ...): each
    side's mean ± sd, the difference of the means with its 95% Welch interval, and the paired tests
    of each side's best run by valid BLEU."""
    from s2s.compare import compare_groups, compare_sides, group_table, group_to_json, revision, table, to_json, workspace
    from s2s.textio import write_json

    def action() -> None:
        baselines = [revision(root, rev) for rev in against]
        candidates = [revision(root, rev) for rev in candidate] or [workspace(root)]
        if len(baselines) == 1 and len(candidates) == 1:
            comparisons = compare_sides(baselines[0], candidates[0], resamples, trials, seed)
            typer.echo(table(comparisons, baselines[0].name, candidates[0].name, markdown=md), nl=False)
            figures = to_json(comparisons, baselines[0].name, candidates[0].name)
        else:
            report = compare_groups(baselines, candidates, resamples, trials, seed)
            typer.echo(group_table(report, markdown=md), nl=False)
            figures = group_to_json(report)
        if out:
            write_json(out, figures)
    _run(action)


@app.command()
def info(params: Path = ParamsOption,
         markdown: bool = typer.Option(False, "--markdown",
                                       help="print the params reference (docs/params.md) instead")) -> None:
    """Print the validated params (every knob, defaults filled in), or the params reference."""
    import yaml

    from s2s.config import load_params, params_to_dict
    from s2s.params_reference import params_reference

    if markdown:
        _run(lambda: typer.echo(params_reference(), nl=False))
    else:
        _run(lambda: typer.echo(yaml.safe_dump(params_to_dict(load_params(params)), sort_keys=False)))


if __name__ == "__main__":  # pragma: no cover - `python -m s2s.cli`
    app()
