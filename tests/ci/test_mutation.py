"""``make mutation`` (``.ci/mutation.py``): which mutants count, and a configuration that points
at real files, tests and functions."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.test_gitlab_ci import ROOT

_spec = importlib.util.spec_from_file_location("mutation", ROOT / ".ci" / "mutation.py")
mutation = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mutation", mutation)  # its dataclasses look their module up there
_spec.loader.exec_module(mutation)
GROUPS = mutation.load_groups()


def test_the_score_leaves_out_excluded_functions_and_equivalent_mutants():
    group = mutation.Group(
        name="g",
        files=["pkg/mod.py"],
        tests=[],
        floor=0.9,
        exclude={"pkg.mod.x_print_report": "terminal text"},
        equivalent={"pkg.mod.x_f__mutmut_3": "same behaviour"},
    )
    statuses = {
        "pkg.mod.x_f__mutmut_1": "killed",
        "pkg.mod.x_f__mutmut_2": "timeout",
        "pkg.mod.x_f__mutmut_3": "survived",
        "pkg.mod.x_f__mutmut_4": "survived",
        "pkg.mod.x_print_report__mutmut_1": "survived",
    }
    (score,) = mutation.score(group, statuses)
    assert (score.killed, score.counted, score.equivalent, score.excluded) == (2, 3, 1, 1)
    assert score.survivors == ["pkg.mod.x_f__mutmut_4 (survived)"]
    # Only survivors that count are tried again on the next run.
    assert [m for m in statuses if mutation.counts(group, m)] == [
        "pkg.mod.x_f__mutmut_1",
        "pkg.mod.x_f__mutmut_2",
        "pkg.mod.x_f__mutmut_4",
    ]


def test_a_module_that_is_in_no_group_is_refused_naming_the_choices():
    with pytest.raises(SystemExit, match=r"MODULE='nowhere' is no group or file .*expected one of: contract"):
        mutation.select(GROUPS, "nowhere")
    (one,) = mutation.select(GROUPS, "model_code.monitoring.drift")
    assert (one.name, one.files) == ("statistics", ["model_code/monitoring/drift.py"])


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_each_group_names_files_tests_and_functions_that_exist(name):
    group = GROUPS[name]
    sources = {f: (ROOT / f).read_text() for f in group.files}
    assert all((ROOT / t).exists() for t in group.tests), group.tests
    for pattern in group.exclude:
        # mutmut names a function's mutants <module>.x_<function>: the excluded one must be defined.
        module, _, function = pattern.rpartition(".x_")
        assert re.search(
            rf"^\s*def {re.escape(function)}\(", sources[module.replace(".", "/") + ".py"], re.M
        ), pattern
    for pattern in group.text_lines:
        assert any(re.search(pattern, line) for text in sources.values() for line in text.splitlines()), (
            pattern
        )


def test_a_quick_run_takes_only_the_groups_own_tests_and_keeps_its_verdicts_apart():
    (contract,) = mutation.select(GROUPS, "model_code/contract/rules.py")
    quick = mutation.quick(contract, ["tests/model_code/contract/test_rules.py"])
    assert (quick.name, quick.tests, quick.files) == (
        "contract-quick",
        ["tests/model_code/contract/test_rules.py"],
        ["model_code/contract/rules.py"],
    )
    with pytest.raises(
        SystemExit, match=r"--tests tests/localcloud/test_state.py: not among group contract's"
    ):
        mutation.quick(contract, ["tests/localcloud/test_state.py"])


def test_a_sampled_score_is_printed_with_wilsons_interval(capsys):
    # Wilson's score interval (1927) for 9 of 10 at z = 1.96, worked by hand: centre 1.09208 / 1.38416,
    # half-width 1.96 * sqrt(0.009 + 0.009604) / 1.38416: 0.596 to 0.982.
    low, high = mutation.interval(9, 10)
    assert (round(low, 3), round(high, 3)) == (0.596, 0.982)
    assert mutation.interval(0, 0) == (0.0, 1.0)
    group = mutation.Group(name="g", files=["pkg/mod.py"], tests=[], floor=0.85)
    statuses = {f"pkg.mod.x_f__mutmut_{i}": ("killed" if i < 9 else "survived") for i in range(10)}
    assert mutation.report(group, mutation.score(group, statuses), drawn_from=400) is True
    out = capsys.readouterr().out
    assert "== g: 9/10 killed = 90.0% (floor 85%)" in out
    assert "a random sample of 10 of the 400 mutants that count: 95% interval 59.6% to 98.2%" in out


def test_a_run_that_stopped_before_testing_the_mutants_gives_no_score(capsys):
    group = mutation.Group(name="g", files=["pkg/mod.py"], tests=[], floor=0.85)
    statuses = {"pkg.mod.x_f__mutmut_1": "killed", "pkg.mod.x_f__mutmut_2": "not checked"}
    assert mutation.report(group, mutation.score(group, statuses)) is False
    out = capsys.readouterr().out
    assert "== g: no score: 1 mutants were not checked; mutmut's run stopped before testing them" in out
    assert "killed =" not in out


def _collected(target: str, env: dict[str, str]) -> list[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [line for line in listed if "::" in line]


def test_a_group_marked_whole_modules_tries_each_mutant_on_every_test_of_its_modules():
    """As mutmut runs a mutant's tests: pytest given one test id, MUTANT_UNDER_TEST naming the mutant."""
    this = "tests/ci/test_mutation.py"
    one = f"{this}::test_a_sampled_score_is_printed_with_wilsons_interval"
    plain = {k: v for k, v in os.environ.items() if k not in {mutation.WHOLE_MODULES, "MUTANT_UNDER_TEST"}}
    mutant = {**plain, "MUTANT_UNDER_TEST": "pkg.mod.x_f__mutmut_1"}
    everything = _collected(this, plain)
    assert len(everything) > 10
    assert _collected(one, mutant) == [one]
    assert _collected(one, {**mutant, mutation.WHOLE_MODULES: "1"}) == everything
    assert _collected(one, {**plain, mutation.WHOLE_MODULES: "1"}) == [one]  # only under a mutant


def test_a_draw_keeps_its_mutants_when_the_code_around_them_changes():
    names = [f"pkg.mod.x_f{f}__mutmut_{i}" for f in range(20) for i in range(1, 51)]  # 1,000 mutants
    first = mutation.draw(names, 100, seed=29)
    assert len(set(first)) == 100 and mutation.draw(list(reversed(names)), 100, seed=29) == first
    assert mutation.draw(names, 100, seed=30) != first
    # f3 edited: its 50 mutants are made again, 60 of them now
    edited = [n for n in names if not n.startswith("pkg.mod.x_f3__")]
    edited += [f"pkg.mod.x_f3__mutmut_{i}" for i in range(1, 61)]
    again = mutation.draw(edited, 100, seed=29)
    kept = set(first) & set(again)
    untouched = {n for n in first if not n.startswith("pkg.mod.x_f3__")}
    assert len(untouched - kept) <= len(set(again) - set(first))  # only pushed out by new ones
    # every function's mutants are drawn about as often as their share (the draw is uniform)
    per_function = [
        sum(n.startswith(f"pkg.mod.x_f{f}__") for n in mutation.draw(names, 500, 29)) for f in range(20)
    ]
    assert min(per_function) >= 12 and max(per_function) <= 38, per_function
