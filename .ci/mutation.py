"""``make mutation [MODULE=group|path]``: do the tests fail when the code is wrong?

mutmut 3 changes one thing at a time in the code users depend on most (a comparison flipped,
a constant moved by one, ``and`` for ``or``, a return made ``None``, a statement dropped) and
runs the tests of that part against each change. A change no test notices *survives*.

The parts, their tests and their floors are the groups of ``[tool.mlops-mutation]`` in
pyproject.toml. Each group runs in a scratch copy of the tracked tree (``.state/mutation/<group>``)
whose ``[tool.mutmut]`` names only that group's files and tests: mutmut first runs the tests
once to learn which test reaches which function, so pointing it at the whole suite would cost
the whole suite's time and more for every group.

Scores: killed (a test failed, or the mutant timed out) over the mutants that count, that is
all but the *equivalent* ones, which change no behaviour and are listed in the group's
configuration with a one-line reason, and those in functions excluded there (code that only
formats terminal text); lines that only hold terminal text (``text_lines``) are not mutated at
all. Prints a table per file, the survivors, and exits 1 when a group is
below its floor, so a scheduled CI job fails visibly.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code): these count as killed.
KILLED = {"killed", "timeout", "caught by type check"}
WHOLE_MODULES = "MLOPS_MUTATION_WHOLE_MODULES"  # read by tests/conftest.py


@dataclass(frozen=True)
class Group:
    name: str
    files: list[str]
    tests: list[str]
    floor: float
    exclude: dict[str, str] = field(default_factory=dict)  # function pattern -> why
    # Source lines never mutated (mutmut's do_not_mutate_patterns): regular expression -> why.
    text_lines: dict[str, str] = field(default_factory=dict)
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant name -> why
    # [tool.mutmut] settings for this group only, over the committed ones.
    mutmut: dict[str, object] = field(default_factory=dict)
    # Each mutant runs every test of the modules its tests are in (tests/conftest.py): for
    # tests whose module fixtures do the work the tests then read.
    whole_modules: bool = False


@dataclass
class Score:
    file: str
    killed: int = 0
    survivors: list[str] = field(default_factory=list)
    equivalent: int = 0
    excluded: int = 0

    @property
    def counted(self) -> int:
        return self.killed + len(self.survivors)

    @property
    def ratio(self) -> float:
        return self.killed / self.counted if self.counted else 1.0


def load_groups(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Group]:
    config = tomllib.loads(pyproject.read_text())["tool"]["mlops-mutation"]["groups"]
    return {name: Group(name=name, **spec) for name, spec in config.items()}


def select(groups: dict[str, Group], module: str | None) -> list[Group]:
    """All groups, one by name, or the one holding a file (as a path or a dotted module)."""
    if not module:
        return list(groups.values())
    if module in groups:
        return [groups[module]]
    path = module if module.endswith(".py") else module.replace(".", "/") + ".py"
    for group in groups.values():
        if path in group.files:
            return [replace(group, files=[path])]
    choices = ", ".join([*groups, *(f for g in groups.values() for f in g.files)])
    raise SystemExit(
        f"mutation: MODULE={module!r} is no group or file of [tool.mlops-mutation]; expected one of: {choices}"
    )


def quick(group: Group, tests: list[str]) -> Group:
    """The group with only ``tests`` (each one of its own, or inside one of its folders)."""
    outside = [t for t in tests if not any(t == g or t.startswith(g.rstrip("/") + "/") for g in group.tests)]
    if outside:
        raise SystemExit(
            f"mutation: --tests {' '.join(outside)}: not among group {group.name}'s tests {group.tests}"
        )
    return replace(group, name=f"{group.name}-quick", tests=tests)


def file_of(mutant: str, files: list[str]) -> str:
    """The file a mutant name (``pkg.module.x_function__mutmut_3``) belongs to."""
    module = mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]
    for f in files:
        if f.removesuffix(".py").replace("/", ".") == module:
            return f
    return module


def counts(group: Group, mutant: str) -> bool:
    """Whether the mutant counts in the score: not equivalent, not in an excluded function."""
    function = mutant.rsplit("__mutmut_", 1)[0]
    return mutant not in group.equivalent and not any(fnmatch.fnmatch(function, p) for p in group.exclude)


def score(group: Group, statuses: dict[str, str]) -> list[Score]:
    """Per file of the group: killed, survivors, and what equivalents and exclusions took out."""
    scores = {f: Score(f) for f in group.files}
    for mutant, status in sorted(statuses.items()):
        entry = scores.setdefault(file_of(mutant, group.files), Score(file_of(mutant, group.files)))
        function = mutant.rsplit("__mutmut_", 1)[0]
        if any(fnmatch.fnmatch(function, pattern) for pattern in group.exclude):
            entry.excluded += 1
        elif mutant in group.equivalent:
            entry.equivalent += 1
        elif status in KILLED:
            entry.killed += 1
        else:
            entry.survivors.append(f"{mutant} ({status})")
    return list(scores.values())


def scratch_copy(group: Group) -> Path:
    """The tracked tree (and untracked, unignored files) copied, with this group's mutmut config.

    The copy is refreshed in place: mutmut keeps its results in ``mutants/`` beside it and,
    run again, tests only the mutants of functions that changed or were not tested yet.
    """
    work = ROOT / ".state" / "mutation" / group.name
    work.mkdir(parents=True, exist_ok=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if source.is_file():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / relative)
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"].get("mutmut", {})
    tops = sorted({relative.split("/")[0] for relative in listed})
    settings = {
        **base,
        "source_paths": sorted({f.split("/")[0] + "/" for f in group.files}),
        "only_mutate": group.files,
        "pytest_add_cli_args_test_selection": group.tests,
        "do_not_mutate_patterns": list(group.text_lines),
        # mutmut runs the tests inside mutants/: everything they read must be there too
        "also_copy": [t for t in tops if t not in {".ci", ".gitlab-ci.yml"}],
        **group.mutmut,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    pyproject = work / "pyproject.toml"
    text = pyproject.read_text()
    start = text.find("[tool.mutmut]")
    if start >= 0:  # the committed base section is replaced by the group's whole one
        end = text.find("\n[", start + 1)
        text = text[:start] + (text[end + 1 :] if end >= 0 else "")
    pyproject.write_text(text + "\n".join(lines) + "\n")
    return work


def toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def run_group(
    group: Group, max_children: int, *, fresh: bool = False, sample: int | None = None, seed: int = 29
) -> tuple[dict[str, str], int | None]:
    """Every mutant's status after this run (``sample``: the status of each mutant of the sample,
    and how many mutants that count it was drawn from; None when not sampled).

    mutmut lets an earlier verdict stand while the mutated function is unchanged, even when
    the tests changed: the survivors of an earlier run that count are tried again against the
    tests as they are now, with the map of which test reaches which function made afresh
    (``fresh`` starts over, every verdict forgotten).

    ``sample``: only that many of the mutants that count, drawn at random with ``seed`` (the
    same draw for the same mutants), are tested; the score is then an estimate of the group's.
    """
    work = scratch_copy(group)
    if fresh:
        shutil.rmtree(work / "mutants", ignore_errors=True)
    mutmut = [sys.executable, "-m", "mutmut"]
    run = [*mutmut, "run", "--max-children", str(max_children)]
    environment = {**os.environ, WHOLE_MODULES: "1"} if group.whole_modules else None
    drawn: list[str] = []
    population = None
    if sample is not None:
        # mutmut makes the mutants (again for code that changed) at the start of a run: a run of
        # none, so that the draw is from the mutants of the code as it is now.
        made = subprocess.run(
            [*run, "no-such-mutant*"], cwd=work, env=environment, capture_output=True, text=True, check=False
        )
        if "nothing matches" not in made.stderr:  # mutmut ends a run of none with that assertion
            print(made.stdout, made.stderr, sep="\n")
        candidates = [name for name in results(work) if counts(group, name)]
        population = len(candidates)
        drawn = draw(candidates, sample, seed)
    statuses = results(work)
    earlier = [
        name
        for name, status in statuses.items()
        if status not in {*KILLED, "not checked"} and counts(group, name) and (not drawn or name in drawn)
    ]
    if drawn:
        unchecked = [name for name in drawn if statuses[name] == "not checked"]
        if unchecked:
            subprocess.run([*run, *unchecked], cwd=work, env=environment, check=False)
    else:
        subprocess.run(run, cwd=work, env=environment, check=False)
    if earlier:
        # mutmut maps each function to the tests that reach it once, and keeps the map while a
        # test keeps its name: an edited test would not be run on the functions it reaches now.
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        subprocess.run([*run, *earlier], cwd=work, env=environment, check=False)
    statuses = results(work)
    return ({name: statuses[name] for name in drawn} if drawn else statuses), population


def draw(candidates: list[str], n: int, seed: int) -> list[str]:
    """``n`` of the mutants at random: those whose names hash lowest with the seed. A mutant's
    place depends on its name alone, so after an edit the draw keeps every mutant of the code
    that did not change, bar the few an edit's new mutants push out (mutmut's earlier verdicts on
    them stand); a draw from a shuffled list would change whole."""
    rank = {name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest() for name in candidates}
    return sorted(candidates, key=rank.__getitem__)[:n]


def results(work: Path) -> dict[str, str]:
    """mutmut's status per mutant in the scratch copy ``work`` (none before its first run)."""
    if not (work / "mutants").is_dir():
        return {}
    listed = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses = {}
    for line in listed.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[name] = status
    return statuses


def interval(killed: int, tested: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval of the share killed, when ``tested`` mutants were drawn at random."""
    if not tested:
        return 0.0, 1.0
    share = killed / tested
    centre = (share + z * z / (2 * tested)) / (1 + z * z / tested)
    spread = (
        z * math.sqrt(share * (1 - share) / tested + z * z / (4 * tested * tested)) / (1 + z * z / tested)
    )
    return max(0.0, centre - spread), min(1.0, centre + spread)


def report(group: Group, scores: list[Score], *, drawn_from: int | None = None) -> bool:
    """Print the group's table; ``drawn_from``: the scores are of a random sample of that many."""
    unchecked = [name for s in scores for name in s.survivors if name.endswith("(not checked)")]
    if unchecked:
        # No score from a run that did not happen: mutmut stops before testing any mutant
        # when the tests fail on the unmutated code (it prints which above).
        print(
            f"\n== {group.name}: no score: {len(unchecked)} mutants were not checked; mutmut's run "
            "stopped before testing them (its output above says why, e.g. a test failing on the code as it is)"
        )
        return False
    killed = sum(s.killed for s in scores)
    counted = sum(s.counted for s in scores)
    ratio = killed / counted if counted else 1.0
    print(f"\n== {group.name}: {killed}/{counted} killed = {ratio:.1%} (floor {group.floor:.0%})")
    if drawn_from is not None:
        low, high = interval(killed, counted)
        print(
            f"   a random sample of {counted} of the {drawn_from} mutants that count: 95% interval {low:.1%} to {high:.1%}"
        )
    print(f"{'file':48} {'mutants':>8} {'killed':>7} {'score':>7} {'equiv.':>7} {'excl.':>6}")
    for s in scores:
        print(f"{s.file:48} {s.counted:>8} {s.killed:>7} {s.ratio:>7.1%} {s.equivalent:>7} {s.excluded:>6}")
    survivors = [name for s in scores for name in s.survivors]
    if survivors:
        print(f"survivors ({len(survivors)}; `mutmut show NAME` in .state/mutation/{group.name} shows one):")
        print("\n".join(f"  {name}" for name in survivors))
    for function, why in group.exclude.items():
        print(f"excluded {function}: {why}")
    for pattern, why in group.text_lines.items():
        print(f"not mutated, lines matching {pattern}: {why}")
    for mutant, why in group.equivalent.items():
        print(f"equivalent {mutant}: {why}")
    return ratio >= group.floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "module", nargs="?", default=None, help="a group, or one file of a group (default: all)"
    )
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument(
        "--fresh", action="store_true", help="forget the verdicts of earlier runs kept in .state/mutation"
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="test only N mutants drawn at random (quicker; the score is then an estimate, with its 95%% interval)",
    )
    parser.add_argument("--seed", type=int, default=29, help="the draw of --sample (default 29)")
    parser.add_argument(
        "--tests",
        nargs="+",
        metavar="PATH",
        help="run only these of the group's tests: quicker, and a lower bound of the group's score "
        "(kept apart, in .state/mutation/<group>-quick)",
    )
    args = parser.parse_args(argv)
    groups = select(load_groups(), args.module)
    if args.tests:
        groups = [quick(group, args.tests) for group in groups]
    passed = []
    for group in groups:
        statuses, drawn_from = run_group(
            group, args.max_children, fresh=args.fresh, sample=args.sample, seed=args.seed
        )
        passed.append(report(group, score(group, statuses), drawn_from=drawn_from))
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
