"""The conda package: recipe.yaml agrees with pyproject.toml, and the package builds, installs and runs.

Negative controls run the same check (and once the build) on mutated copies of the project in
tmp_path, so a check that stopped looking would fail here.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

SPEC = importlib.util.spec_from_file_location("conda_build_tool", ROOT / "conda-recipe" / "build.py")
conda = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = conda  # dataclasses look their module up by name
SPEC.loader.exec_module(conda)

RECIPES = ("recipe.yaml", "variants.yaml")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what a build reads: pyproject.toml, the package, the recipes, README and LICENSE."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", ".gitignore"):
        shutil.copy2(ROOT / name, copy / name)
    shutil.copytree(ROOT / "kbtools", copy / "kbtools", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "conda-recipe").mkdir()
    for name in RECIPES:
        shutil.copy2(ROOT / "conda-recipe" / name, copy / "conda-recipe" / name)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence, so a mutation can never silently do nothing."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    path.write_text(text.replace(old, new))


def first_script(root: Path) -> tuple[str, str]:
    return next(iter(conda.read_project(root).scripts.items()))


@functools.cache
def problems_of_checkout() -> tuple[str, ...]:
    return tuple(conda.check_recipe(ROOT))


def new_problems(root: Path) -> list[str]:
    """What the check finds in a mutated copy and not in the checkout: what the mutation broke.
    (So these controls stay meaningful even while the checkout itself has a difference.)"""
    return [problem for problem in conda.check_recipe(root) if problem not in problems_of_checkout()]


def test_recipes_agree_with_pyproject(capsys):
    assert conda.main(["check"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == "recipe.yaml agrees with pyproject.toml\n"


def test_copy_of_project_is_faithful(project):
    assert conda.check_recipe(project) == list(problems_of_checkout())


def test_command_missing_from_recipe_is_named(project):
    command, target = first_script(project)
    edit(project / "conda-recipe" / "recipe.yaml", f"      - {command} = {target}\n", "")
    assert new_problems(project) == [
        f"recipe.yaml: entry point missing: `{command} = {target}` (from [project.scripts])"]


def test_recipes_lagging_behind_a_new_command_are_named(project):
    command, target = first_script(project)
    edit(project / "pyproject.toml", f'{command} = "{target}"\n',
         f'{command} = "{target}"\nkb-new = "{target}"\n')
    assert new_problems(project) == [
        f"recipe.yaml: entry point missing: `kb-new = {target}` (from [project.scripts])",
        "recipe.yaml: tests do not run `kb-new --help` (a command of [project.scripts])"]


def test_dependency_missing_from_recipe_is_named(project):
    edit(project / "conda-recipe" / "recipe.yaml", "    - aiohttp\n", "")
    assert new_problems(project) == [
        "recipe.yaml: run requirement missing: `aiohttp` (from [project.dependencies])"]


def test_new_dependency_and_version_bound_reach_the_check(project):
    edit(project / "pyproject.toml", '    "numpy",\n', '    "numpy>=1.21",\n    "zarr",\n')
    assert new_problems(project) == [
        "recipe.yaml: run requirement missing: `numpy >=1.21` (from [project.dependencies])",
        "recipe.yaml: run requirement missing: `zarr` (from [project.dependencies])",
        "recipe.yaml: run requirement not in [project.dependencies]: `numpy`"]


def test_broken_entry_point_in_recipe_is_named(project):
    command, target = first_script(project)
    module, _, function = target.partition(":")
    broken = f"{module}_typo:{function}"
    edit(project / "conda-recipe" / "recipe.yaml", f"      - {command} = {target}\n",
         f"      - {command} = {broken}\n")
    assert new_problems(project) == [
        f"recipe.yaml: entry point missing: `{command} = {target}` (from [project.scripts])",
        f"recipe.yaml: entry point not in [project.scripts]: `{command} = {broken}`",
    ]


def test_version_drift_is_named(project):
    edit(project / "kbtools" / "__init__.py", f'__version__ = "{conda.read_project(ROOT).version}"',
         '__version__ = "9.9.9"')
    problems = new_problems(project)
    version = conda.read_project(ROOT).version
    assert problems == [
        f"recipe.yaml: version is '{version}', the package's __version__ says '9.9.9'"]


def test_python_floor_drift_is_named(project):
    edit(project / "pyproject.toml", 'requires-python = ">=3.10"', 'requires-python = ">=3.12"')
    problems = new_problems(project)
    assert "variants.yaml: python_min is ['3.10'], requires-python says ['3.12']" in problems


def test_license_drift_is_named(project):
    edit(project / "conda-recipe" / "recipe.yaml", "license: Apache-2.0", "license: MIT")
    assert new_problems(project) == [
        "recipe.yaml: about.license is 'MIT', pyproject.toml says 'Apache-2.0'"]


def test_command_not_tested_by_recipe_is_named(project):
    command, _ = first_script(project)
    edit(project / "conda-recipe" / "recipe.yaml", f"      - {command} --help\n", "")
    assert new_problems(project) == [
        f"recipe.yaml: tests do not run `{command} --help` (a command of [project.scripts])"]


def test_recipe_that_does_not_render_gives_one_line(project, capsys):
    edit(project / "conda-recipe" / "recipe.yaml", "  noarch: python\n", "  noarch: python\n  entry_point: []\n")
    assert conda.main(["check", "--root", str(project)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("conda: recipe.yaml does not render: ")
    assert "entry_point" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_check_command_line_names_each_difference(project, capsys):
    edit(project / "conda-recipe" / "recipe.yaml", "    - tqdm\n", "    - pandas\n")
    assert conda.main(["check", "--root", str(project)]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line not in problems_of_checkout()] == [
        "recipe.yaml: run requirement missing: `tqdm` (from [project.dependencies])",
        "recipe.yaml: run requirement not in [project.dependencies]: `pandas`",
    ]


def test_build_install_and_run_every_command(tmp_path):
    lines: list[str] = []
    artifact = conda.build_and_try(ROOT, tmp_path / "work", tmp_path / "dist", say=lines.append)
    project = conda.read_project(ROOT)
    assert artifact.parent == tmp_path / "dist" / "noarch"
    assert artifact.name.startswith(f"kbtools-{project.version}-")
    assert artifact.name in json.loads((artifact.parent / "repodata.json").read_text())["packages.conda"]
    assert artifact.suffix == ".conda"
    prefix = tmp_path / "work" / "prefix"
    record = json.loads(next((prefix / "conda-meta").glob(f"kbtools-{project.version}-*.json")).read_text())
    assert record["noarch"] == "python"
    assert sorted(record["depends"]) == sorted([f"python >={'%d.%d' % sys.version_info[:2]}", *project.run])
    for command in project.scripts:
        assert (prefix / "bin" / command).is_file()
        assert f"  {command} {project.version}" in lines
    assert any(line.startswith("  mda-info ") and "exit 0" in line for line in lines)
    assert any(line.startswith("  kb-check ") and "valid = True" in line for line in lines)


def test_build_fails_when_a_command_breaks_at_run_time(project, tmp_path):
    # The static check passes (the module defines main); only the recipe's own tests can see it.
    command, target = first_script(project)
    module = project.joinpath(*target.partition(":")[0].split(".")).with_suffix(".py")
    module.write_text(module.read_text() + "\nraise SystemExit(7)\n")
    assert new_problems(project) == []
    work = tmp_path / "work"
    conda.make_stub_channel(conda.read_project(project), work / "stub-channel", work / "stub-site")
    with pytest.raises(conda.PackagingError, match=f"Test failed; `{command} --help`: Script failed with status 7"):
        conda.build_package(conda.read_project(project), work, work / "stub-channel")
    assert not list((work / "out" / "noarch").glob("*.conda"))  # rattler-build moved it to out/broken/
