import json
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import dvc, git
from test_significance import REFS, damaged, sentences

from sacrebleu.metrics import BLEU

from s2s.compare import Unavailable, compare_groups, compare_sides, group_table, read_sets, revision, table, workspace
from s2s.errors import S2SError

VALID = sentences(80, seed=9)


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def evaluated_project(repo, dvc_tracked):
    """A git + DVC project at ``repo`` whose commit has evaluated outputs and references; the
    folders ``dvc_tracked`` are `dvc add`ed (in the cache), the rest committed to git."""
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump({"data": {"test_sets": ["test_2016_flickr"]}}))
    write(repo / "data/raw/multi30k/valid.en", VALID)
    write(repo / "data/raw/multi30k/test_2016_flickr.en", REFS)
    write(repo / "outputs/valid.hyp", damaged(VALID, 3, seed=1))
    write(repo / "outputs/test_2016_flickr.hyp", damaged(REFS, 5, seed=1))
    git(repo, "init", "-q")
    assert dvc(repo, "init", "-q").returncode == 0
    for tracked in dvc_tracked:
        assert dvc(repo, "add", "-q", tracked).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    return repo


@pytest.fixture
def evaluated_repo(tmp_path):
    """A git + DVC project whose committed revision has evaluated outputs (tracked by DVC, in its cache)."""
    return evaluated_project(tmp_path / "repo", ("outputs", "data/raw"))


def test_the_workspace_against_its_own_revision_differs_by_nothing(evaluated_repo):
    comparisons = compare_sides(revision(evaluated_repo, "HEAD"), workspace(evaluated_repo), 100, 200)
    assert [c.name for c in comparisons] == ["valid", "test_2016_flickr"]
    for c in comparisons:
        for result in c.results.values():
            assert result.difference == 0 and result.p_bootstrap == 1 and result.p_randomization == 1


def test_a_better_workspace_is_significant_and_the_baseline_is_the_revisions_file(evaluated_repo):
    committed = (evaluated_repo / "outputs/test_2016_flickr.hyp").read_text()
    write(evaluated_repo / "outputs/test_2016_flickr.hyp", damaged(REFS, 1, seed=2))  # the new experiment
    baseline = revision(evaluated_repo, "HEAD")
    assert baseline.read("outputs/test_2016_flickr.hyp") == committed  # from DVC's cache, nothing checked out
    assert (evaluated_repo / "outputs/test_2016_flickr.hyp").read_text() != committed
    test = {c.name: c for c in compare_sides(baseline, workspace(evaluated_repo), 200, 500)}["test_2016_flickr"]
    assert test.results["bleu"].difference > 5 and test.results["bleu"].p_bootstrap < 0.05
    assert test.results["bleu"].p_randomization < 0.05 and test.results["ter"].difference < 0


def test_other_references_are_a_clear_error(evaluated_repo):
    write(evaluated_repo / "data/raw/multi30k/valid.en", VALID[:-1])
    with pytest.raises(S2SError, match=r"valid: the references differ between HEAD \(80 lines.*workspace \(79 lines"):
        compare_sides(revision(evaluated_repo, "HEAD"), workspace(evaluated_repo), 10, 10)


def test_an_unknown_revision_is_a_clear_error(evaluated_repo):
    with pytest.raises(S2SError, match="^nope: not a revision or experiment"):
        revision(evaluated_repo, "nope")


def test_the_command_prints_the_same_table_twice_and_writes_json(evaluated_repo, tmp_path):
    write(evaluated_repo / "outputs/valid.hyp", damaged(VALID, 1, seed=2))
    command = [sys.executable, "-m", "s2s.cli", "compare", "--against", "HEAD", "--root", str(evaluated_repo),
               "--md", "--resamples", "100", "--trials", "200"]
    first = subprocess.run([*command, "--out", str(tmp_path / "c.json")], capture_output=True, text=True,
                           timeout=300)
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    assert first.stdout.startswith("| set | metric | HEAD | workspace | difference | 95% interval |")
    assert "| valid | bleu |" in first.stdout and "100 resamples; approximate randomization: 200 trials" in first.stdout
    figures = json.loads((tmp_path / "c.json").read_text())
    assert figures["baseline"] == "HEAD" and set(figures["sets"]) == {"valid", "test_2016_flickr"}
    assert figures["sets"]["test_2016_flickr"]["bleu"]["difference"] == 0
    assert figures["sets"]["valid"]["chrf"]["difference"] > 0


def test_the_plain_table_is_aligned():
    from s2s.compare import SetComparison
    from s2s.significance import paired_test
    results = {m: paired_test(REFS, REFS, REFS, m, 10, 10) for m in ("bleu", "chrf")}
    text = table([SetComparison("test", len(REFS), results)], "main", "workspace")
    header, first = text.splitlines()[:2]
    assert header.split()[:4] == ["set", "metric", "main", "workspace"] and first.split()[:2] == ["test", "bleu"]


def commit_outputs(repo, valid, test, message):
    write(repo / "outputs/valid.hyp", valid)
    write(repo / "outputs/test_2016_flickr.hyp", test)
    assert dvc(repo, "add", "-q", "outputs").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    git(repo, "tag", message)


def test_several_runs_per_side_give_means_spreads_and_the_paired_test_of_the_best(evaluated_repo):
    repo = evaluated_repo
    git(repo, "tag", "a1")
    commit_outputs(repo, damaged(VALID, 3, seed=4), damaged(REFS, 5, seed=4), "a2")
    commit_outputs(repo, damaged(VALID, 1, seed=5), damaged(REFS, 1, seed=5), "b1")
    commit_outputs(repo, damaged(VALID, 1, seed=6), damaged(REFS, 1, seed=6), "b2")
    baselines = [revision(repo, rev) for rev in ("a1", "a2")]
    candidates = [revision(repo, rev) for rev in ("b1", "b2")]
    report = compare_groups(baselines, candidates, 100, 200)
    texts = read_sets([*baselines, *candidates])
    bleu = {rev: BLEU().corpus_score(texts["test_2016_flickr"].hypotheses[rev], [REFS]).score
            for rev in ("a1", "a2", "b1", "b2")}
    row = next(r for r in report.rows if (r.name, r.metric) == ("test_2016_flickr", "bleu"))
    assert row.result.baseline.mean == pytest.approx((bleu["a1"] + bleu["a2"]) / 2)
    assert row.result.candidate.n == 2 and row.result.difference > 5 and row.result.ci_low > 0
    valid = {rev: BLEU().corpus_score(texts["valid"].hypotheses[rev], [VALID]).score for rev in ("b1", "b2")}
    assert report.best_candidate == max(valid, key=valid.get)  # chosen on valid, not on the test set
    assert report.paired[1].results["bleu"].candidate == pytest.approx(bleu[report.best_candidate])
    text = group_table(report, markdown=True)
    assert text.startswith("| set | metric | baseline mean ± sd | candidate mean ± sd | difference |")
    assert f"paired: {report.best_baseline} (baseline) against {report.best_candidate} (candidate)" in text
    assert group_table(compare_groups(baselines, candidates, 100, 200), markdown=True) == text
    with pytest.raises(S2SError, match="named twice"):
        compare_groups([revision(repo, "a1"), revision(repo, "a1")], candidates)


def test_a_revisions_references_missing_from_the_cache_are_taken_from_the_side_with_the_same_data(tmp_path):
    """As in CI: a fresh clone of main has main's translations (in git) but not its corpus (DVC's cache)."""
    repo = evaluated_project(tmp_path / "repo", ("data/raw",))
    shutil.rmtree(repo / ".dvc" / "cache")
    baseline = revision(repo, "HEAD")
    with pytest.raises(Unavailable, match="HEAD:data/raw/multi30k/valid.en: tracked but not in the DVC cache"):
        baseline.read("data/raw/multi30k/valid.en")
    write(repo / "outputs/test_2016_flickr.hyp", damaged(REFS, 1, seed=2))
    test = {c.name: c for c in compare_sides(baseline, workspace(repo), 100, 200)}["test_2016_flickr"]
    assert test.results["bleu"].difference > 5  # compared on the workspace's references, the same data
    write(repo / "data/raw/multi30k/valid.en", VALID[:-1])  # other data: the hashes differ, so no stand-in
    assert dvc(repo, "add", "-q", "data/raw").returncode == 0
    with pytest.raises(Unavailable, match="HEAD:data/raw/multi30k/valid.en"):
        compare_sides(baseline, workspace(repo), 10, 10)


def test_a_dvc_experiment_is_read_by_its_name(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump({"data": {"test_sets": []}}))
    (repo / "system.yaml").write_text(yaml.safe_dump({"system": "worse"}))
    write(repo / "data/raw/multi30k/valid.en", VALID)
    write(repo / "systems/worse.hyp", damaged(VALID, 5, seed=1))
    write(repo / "systems/better.hyp", damaged(VALID, 1, seed=1))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"vars": ["system.yaml"], "stages": {"evaluate": {
        "cmd": "mkdir -p outputs && cp systems/${system}.hyp outputs/valid.hyp",
        "deps": ["systems"], "params": [{"system.yaml": ["system"]}], "outs": ["outputs"]}}}))
    git(repo, "init", "-q")
    assert dvc(repo, "init", "-q").returncode == 0
    assert dvc(repo, "repro", "-q").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "worse")
    run = dvc(repo, "exp", "run", "-q", "-n", "better-exp", "-S", "system.yaml:system=better")
    assert run.returncode == 0, run.stderr
    git(repo, "checkout", "-q", "--", ".")  # the workspace back to the commit: the experiment is only in its ref
    assert dvc(repo, "checkout", "-q", "--force").returncode == 0
    valid = compare_sides(revision(repo, "HEAD"), revision(repo, "better-exp"), 100, 200)[0]
    assert (valid.name, valid.results["bleu"].baseline) == ("valid", BLEU().corpus_score(damaged(VALID, 5, seed=1), [VALID]).score)
    assert valid.results["bleu"].candidate == BLEU().corpus_score(damaged(VALID, 1, seed=1), [VALID]).score
