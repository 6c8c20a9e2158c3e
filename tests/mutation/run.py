"""Mutation testing of the core modules, each against its own tests: `make mutation`.

For each module, cosmic-ray (single process) mutates a copy of the checkout, never the checkout
itself, runs the module's own tests per mutant, and the score is printed:

    caught / (mutants - equivalent)

where a mutant is caught when a test fails (or times out) and equivalent when its change is listed,
and argued, in tests/mutation/equivalent.md, or changes nothing but annotations that nothing
evaluates: a ``def``'s in a module with ``from __future__ import annotations``, and a local
variable's (mypy checks them, no test can). Surviving mutants that are not listed are printed as
diffs: each is a test to write, or an equivalence to argue.

    python tests/mutation/run.py                      # every core module
    python tests/mutation/run.py kbtools/formats/mda.py  # some
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).resolve().parent / "equivalent.md"
TARGET = 90.0

#: module -> its own tests (kept focused: a module's run takes minutes)
MODULES: dict[str, list[str]] = {
    "kbtools/protocol/canonical.py": ["tests/protocol/test_canonical.py",
                                      "tests/protocol/test_canonical_node.py"],
    "kbtools/protocol/envelope.py": ["tests/protocol/test_envelope.py"],
    "kbtools/formats/mda.py": ["tests/formats/test_mda.py"],
    "kbtools/formats/geom.py": ["tests/formats/test_geom.py"],
    "kbtools/formats/params.py": ["tests/formats/test_params.py"],
    "kbtools/protocol/objecthash.py": ["tests/protocol/test_objecthash.py"],
    "kbtools/protocol/jsondiff.py": ["tests/protocol/test_jsondiff.py"],
    "kbtools/protocol/fastpath.py": ["tests/protocol/test_fastpath.py"],
    "kbtools/protocol/routing.py": ["tests/protocol/test_routing.py"],
    "kbtools/protocol/messages.py": ["tests/protocol/test_messages.py",
                                    "tests/protocol/test_envelope_text.py",
                                    "tests/protocol/test_hubconn.py", "tests/protocol/test_pair.py"],
    "kbtools/protocol/hubconn.py": ["tests/protocol/test_hubconn.py", "tests/protocol/test_states.py",
                                   "tests/protocol/test_fastpath.py"],
    "kbtools/protocol/leafconn.py": ["tests/protocol/test_leafconn.py", "tests/protocol/test_states.py",
                                    "tests/protocol/test_pair.py"],
    "kbtools/protocol/nodedata.py": ["tests/protocol/test_nodedata.py", "tests/protocol/test_fuzz_nodedata.py",
                                     "tests/protocol/test_hubconn.py::test_report_node_data_rules",
                                     "tests/protocol/test_hubconn.py::test_malformed_frames_after_registration",
                                     "tests/protocol/test_hubconn.py::test_node_data_is_kept_compact_and_counted_in_the_index_budget",
                                     "tests/protocol/test_hubconn.py::test_a_delta_past_the_index_bound_is_refused"],
    "kbtools/client/urls.py": ["tests/client/test_urls.py", "tests/client/test_url_properties.py"],
    "kbtools/index/prv.py": ["tests/index/test_prv.py"],
    "kbtools/formats/dataset.py": ["tests/formats/test_dataset.py"],
    "kbtools/formats/codes.py": ["tests/formats/test_codes.py"],
    "kbtools/formats/files.py": ["tests/formats/test_files.py"],
    "kbtools/formats/verdict.py": ["tests/formats/test_verdict.py"],
    "kbtools/protocol/policy.py": ["tests/protocol/test_policy.py"],
    "kbtools/node/grants.py": ["tests/node/test_grants.py"],
}
_SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis",
                               "build", "dist", ".demo", "*.egg-info")


def equivalents() -> dict[str, set[tuple[str, str]]]:
    """module -> {(original line, mutated line)} from equivalent.md.

    Under a heading ``## path/to/module.py``, each entry is a list item
    ``- `original line` → `mutated line`: why``, the lines stripped of indentation.
    """
    out: dict[str, set[tuple[str, str]]] = {}
    module = None
    for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            module = line[3:].strip()
            out.setdefault(module, set())
        m = re.match(r"^- `(.*?)` → `(.*?)`:", line)
        if m and module:
            out[module].add((m.group(1), m.group(2)))
    return out


def changed_lines(diff: str) -> tuple[str, str]:
    """The original and the mutated line of a one-line mutant's diff, stripped."""
    minus = [l[1:].strip() for l in diff.splitlines()
             if l.startswith("-") and not l.startswith("---") and l[1:].strip()]
    plus = [l[1:].strip() for l in diff.splitlines()
            if l.startswith("+") and not l.startswith("+++") and l[1:].strip()]
    return " / ".join(minus), " / ".join(plus)


class _DropAnnotations(ast.NodeTransformer):
    """Blank the annotations nothing evaluates: a ``def``'s (under ``from __future__ import
    annotations``, with ``future``) and those of assignments inside a function body (never
    evaluated, PEP 526). Class-level and module-level annotations are kept: they reach
    ``__annotations__``, which dataclasses and ``typing.get_type_hints`` read."""

    def __init__(self, future: bool) -> None:
        self.future = future
        self.depth = 0

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        if self.future:
            node.returns = None
            args = node.args
            for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if arg is not None:
                    arg.annotation = None
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        depth, self.depth = self.depth, 0  # a class body is not a function body
        self.generic_visit(node)
        self.depth = depth
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if self.depth:
            node.annotation = ast.Constant(None)
        return node


def _stripped(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    future = "from __future__ import annotations" in source
    return ast.dump(_DropAnnotations(future).visit(tree))


def annotation_only(source: str, old: str, new: str) -> bool:
    """True for a mutant that changes only annotations nothing evaluates (see _DropAnnotations):
    the module with the mutated line, wherever the original line stands in it, parses to the
    same tree as the original once those annotations are blanked."""
    if not old or old == new:
        return False
    lines = source.splitlines(keepends=True)
    spots = [i for i, line in enumerate(lines) if line.strip() == old]
    base = _stripped(source)
    if not spots or base is None:
        return False
    for i in spots:
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        mutated = "".join(lines[:i] + [indent + new + "\n"] + lines[i + 1:])
        if _stripped(mutated) != base:
            return False
    return True


def run_module(module: str, tests: list[str], listed: set[tuple[str, str]]) -> dict:
    with tempfile.TemporaryDirectory(prefix="kbtools-mutation-") as tmp:
        work = Path(tmp) / "tree"
        shutil.copytree(ROOT, work, ignore=_SKIP, symlinks=True)
        # Hypothesis's pytest plugin costs a third of a short run's start-up: left out when none
        # of the module's test files uses Hypothesis.
        plugins = [] if any("hypothesis" in (ROOT / t.split("::")[0]).read_text(encoding="utf-8")
                            for t in tests) else ["-p", "no:hypothesispytest"]
        test_command = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 *plugins, *tests])
        # a failing Hypothesis test is a caught mutant as soon as it fails: no shrinking
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", KBTOOLS_FUZZ_SHRINK="0")
        baseline = subprocess.run(test_command.split(), cwd=work, env=env, capture_output=True, text=True)
        if baseline.returncode != 0:
            raise SystemExit(f"{module}: its tests fail before any mutation:\n{baseline.stdout[-3000:]}")
        config = work / "cosmic-ray.toml"
        config.write_text(
            "[cosmic-ray]\n"
            f"module-path = {json.dumps(module)}\n"
            "timeout = 120.0\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(test_command)}\n"
            "[cosmic-ray.distributor]\nname = \"local\"\n", encoding="utf-8")
        cr = [sys.executable, "-m", "cosmic_ray.cli"]
        subprocess.run(cr + ["init", str(config), "session.sqlite"], cwd=work, env=env, check=True)
        subprocess.run(cr + ["exec", str(config), "session.sqlite"], cwd=work, env=env, check=True)
        dump = subprocess.run(cr + ["dump", "session.sqlite"], cwd=work, env=env, check=True,
                              capture_output=True, text=True).stdout
    source = (ROOT / module).read_text(encoding="utf-8")
    caught = incompetent = 0
    equivalent, survivors, stale = [], [], set(listed)
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None:
            continue
        diff = result.get("diff") or ""
        pair = changed_lines(diff)
        if result["test_outcome"] == "incompetent":
            incompetent += 1
        elif result["test_outcome"] == "killed":
            caught += 1
        elif pair in listed:
            equivalent.append(pair)
            stale.discard(pair)
        elif annotation_only(source, *pair):
            equivalent.append(pair)
        else:
            survivors.append(pair)
    total = caught + len(equivalent) + len(survivors)
    scored = total - len(equivalent)
    score = 100.0 * caught / scored if scored else 100.0
    return dict(module=module, total=total, caught=caught, equivalent=len(equivalent),
                survived=len(survivors), incompetent=incompetent, score=score,
                survivors=survivors, stale=sorted(stale & {p for p in listed}))


def main(argv: list[str]) -> int:
    modules = argv or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"unknown module(s): {' '.join(unknown)}; choose from: {' '.join(MODULES)}", file=sys.stderr)
        return 2
    listed = equivalents()
    results = []
    for module in modules:
        print(f"== {module} (tests: {' '.join(MODULES[module])})", flush=True)
        r = run_module(module, MODULES[module], listed.get(module, set()))
        results.append(r)
        for old, new in r["survivors"]:
            print(f"   survived: `{old}` → `{new}`")
        print(f"   {r['score']:.1f}% caught: {r['caught']} of {r['total'] - r['equivalent']} "
              f"({r['equivalent']} equivalent, {r['survived']} survived, {r['incompetent']} incompetent)",
              flush=True)
    print("\nmodule                                   score   caught/scored  equivalent")
    for r in results:
        print(f"{r['module']:<40} {r['score']:5.1f}%  {r['caught']:>6}/{r['total'] - r['equivalent']:<6}  "
              f"{r['equivalent']:>10}")
    low = [r["module"] for r in results if r["score"] < TARGET]
    if low:
        print(f"below {TARGET:.0f}%: {' '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
