#!/usr/bin/env python3
"""Check, build, install and try the kbtools conda package (conda-recipe/recipe.yaml), offline.

    python conda-recipe/build.py check   # does recipe.yaml agree with pyproject.toml?
    python conda-recipe/build.py build   # check, then build the .conda with rattler-build, run the
                                         # recipe's tests, install it into a fresh prefix and run
                                         # every command from there; the package lands in dist/conda/

No conda channel is needed: the build and test environments are resolved against a local *stub
channel* whose `python` is a venv over this interpreter and whose other packages (pip, setuptools,
the run requirements) are empty stand-ins for what this interpreter really has installed.
docs/packaging.md says what this proves and what it does not.

Runs on Python >= 3.11 (tomllib) with the packages of tests/requirements.txt (py-rattler-build,
py-rattler, pyyaml) next to the project's own dependencies.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as installed_version
from pathlib import Path
from typing import Iterator

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
RECIPE_DIR = "conda-recipe"
STUB_BUILD = "0_stub"


class PackagingError(Exception):
    """A check or build step failed; the message says what differs or what to do."""


# -- what pyproject.toml says, and whether recipe.yaml says the same -------------------------------

@dataclass
class Project:
    root: Path
    name: str
    version: str
    license: str
    python_min: str
    scripts: dict[str, str]          # command -> "module:function"
    run: list[str]                   # conda specs of [project.dependencies]
    build_backend: list[str]         # conda specs of [build-system].requires

    @property
    def import_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def entry_points(self) -> list[str]:
        return [f"{command} = {target}" for command, target in self.scripts.items()]


def conda_spec(requirement: str) -> str:
    """`numpy>=1.21` -> `numpy >=1.21` (conda-forge uses the PyPI names of these packages)."""
    req = Requirement(requirement)
    name = re.sub(r"[-_.]+", "-", req.name).lower()
    return f"{name} {req.specifier}" if req.specifier else name


def read_project(root: Path) -> Project:
    """What the recipe must repeat, read from pyproject.toml (and the version's one source)."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        project = data["project"]
        attr = data["tool"]["setuptools"]["dynamic"]["version"]["attr"]  # kbtools.__version__
        module, _, variable = attr.rpartition(".")
        source = (root / module.replace(".", "/") / "__init__.py").read_text(encoding="utf-8")
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise PackagingError(f"pyproject.toml: {one_line(exc)}") from None
    version = re.search(rf"^{variable} = \"([^\"]+)\"", source, re.M)
    floor = re.fullmatch(r">=(\d+\.\d+)", project.get("requires-python", ""))
    if version is None or floor is None:
        raise PackagingError(f"pyproject.toml: no literal {attr}, or requires-python is not >=X.Y")
    return Project(root, project["name"], version.group(1), project.get("license", ""),
                   floor.group(1), dict(project.get("scripts", {})),
                   [conda_spec(r) for r in project.get("dependencies", [])],
                   [conda_spec(r) for r in data.get("build-system", {}).get("requires", [])])


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:400] + " ..."


def compare(what: str, want: list[str], got: list[str], source: str) -> list[str]:
    """Messages naming each item missing from, or extra in, a list of recipe.yaml."""
    def spelled(spec: str) -> str:  # one spelling per spec: `numpy  >=1.21` is `numpy >=1.21`
        name, _, rest = str(spec).partition(" ")
        return f"{name} {rest.replace(' ', '')}".strip()
    have, need = {spelled(x) for x in got}, {spelled(x) for x in want}
    return ([f"recipe.yaml: {what} missing: `{x}` (from {source})" for x in want if spelled(x) not in have]
            + [f"recipe.yaml: {what} not in {source}: `{x}`" for x in got if spelled(x) not in need])


def same(what: str, want: object, got: object, source: str) -> list[str]:
    return [] if want == got else [f"{what} is {got!r}, {source} says {want!r}"]


def check_recipe(root: Path = ROOT) -> list[str]:
    """Every difference between recipe.yaml (rendered by rattler-build itself, with the shipped
    python_min) and pyproject.toml, one message each; empty when they agree."""
    from rattler_build import Stage0Recipe, VariantConfig

    project = read_project(root)
    recipe_dir = root / RECIPE_DIR
    try:
        python_min = yaml.safe_load((recipe_dir / "variants.yaml").read_text())["python_min"]
        rendered = Stage0Recipe.from_file(recipe_dir / "recipe.yaml").render(
            VariantConfig.from_file(recipe_dir / "variants.yaml"))
        recipe = rendered[0].recipe.to_dict()
    except Exception as exc:  # YAML, rattler-build (several unrelated types): all a bad recipe
        raise PackagingError(f"recipe.yaml does not render: {one_line(exc)}") from None
    floor = project.python_min
    requirements = recipe.get("requirements", {})
    tested = {line.strip() for test in recipe.get("tests", []) if "script" in test
              for line in test["script"]}
    return [
        *same("variants.yaml: python_min", [floor], python_min, "requires-python"),
        *same("recipe.yaml: version", project.version, recipe["package"]["version"],
              "the package's __version__"),
        *same("recipe.yaml: about.license", project.license, recipe.get("about", {}).get("license"),
              "pyproject.toml"),
        *compare("entry point", project.entry_points,
                 recipe.get("build", {}).get("python", {}).get("entry_points", []), "[project.scripts]"),
        *compare("host requirement", [f"python {floor}.*", "pip", *project.build_backend],
                 requirements.get("host", []), "requires-python and [build-system]"),
        *compare("run requirement", [f"python >={floor}", *project.run], requirements.get("run", []),
                 "[project.dependencies]"),
        *[f"recipe.yaml: tests do not run `{command} --help` (a command of [project.scripts])"
          for command in project.scripts if f"{command} --help" not in tested],
    ]


# -- the offline build ---------------------------------------------------------------------------

def make_stub_channel(project: Project, channel: Path, site: Path) -> None:
    """A local channel standing in for conda-forge: see the module docstring."""
    from rattler import Subdir
    from rattler.index import index_fs
    from rattler_build import assemble_package

    shutil.rmtree(channel, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    subdir = str(Subdir.current())
    (channel / "noarch").mkdir(parents=True)
    (channel / subdir).mkdir()

    # The stub python sees this interpreter's packages through a directory of links that leaves
    # out the project's own (editable) install: the package under test must bring its own copy.
    own = (project.import_name, "__editable__")
    site.mkdir(parents=True)
    for library in dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")):
        for entry in Path(library).iterdir():
            if not entry.name.startswith(own) and entry.suffix != ".pth" and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)

    short = "%d.%d" % sys.version_info[:2]
    base = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    with tempfile.TemporaryDirectory() as stage_dir:
        stage = Path(stage_dir)
        (stage / "bin").mkdir()
        (stage / "bin" / "python").symlink_to(base)
        for alias in ("python3", f"python{short}"):
            (stage / "bin" / alias).symlink_to("python")
        (stage / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n"
                                          f"version = {'%d.%d.%d' % sys.version_info[:3]}\n")
        site_packages = stage / "lib" / f"python{short}" / "site-packages"
        site_packages.mkdir(parents=True)
        (site_packages / "stub-harness.pth").write_text(f"{site}\n")
        assemble_package(name="python", version="%d.%d.%d" % sys.version_info[:3], target_platform=subdir,
                         build_string=f"{STUB_BUILD}_cp{short.replace('.', '')}", output_dir=channel / subdir,
                         files_dir=stage, summary=f"stub: a venv over {base}", detect_prefix=False)

    for spec in ["pip", *project.build_backend, *project.run]:
        name = spec.split()[0]
        try:
            stub_version = installed_version(name)
        except PackageNotFoundError:
            raise PackagingError(f"{name} is not installed in {sys.executable}; the stub channel needs it "
                                 f"(pip install -e . and -r tests/requirements.txt)") from None
        with tempfile.TemporaryDirectory() as stage_dir:
            marker = Path(stage_dir) / "share" / "kbtools-stubs" / f"{name}.txt"
            marker.parent.mkdir(parents=True)
            marker.write_text(f"stub: {name} {stub_version} is provided by {site}\n")
            assemble_package(name=name, version=stub_version, target_platform="noarch",
                             build_string=STUB_BUILD, output_dir=channel / "noarch", files_dir=stage_dir,
                             noarch="generic", depends=["python"], summary=f"stub: {name}")
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False))


@contextlib.contextmanager
def rattler_cache(path: Path) -> Iterator[None]:
    """Give rattler-build a package cache of this run's own: the stubs of two runs (or of a
    run and a concurrent test) share names and versions but not contents."""
    before = os.environ.get("RATTLER_CACHE_DIR")
    os.environ["RATTLER_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["RATTLER_CACHE_DIR"]
        else:
            os.environ["RATTLER_CACHE_DIR"] = before


class BuildLog:
    """rattler-build's progress callback: keeps the log, so a failure can name what failed."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def on_download_start(self, event: object) -> None: ...
    def on_download_progress(self, event: object) -> None: ...
    def on_download_complete(self, event: object) -> None: ...

    def on_build_step(self, event: object) -> None:
        self.lines.append(("step", f"{event.step_name}: {event.message}"))

    def on_log(self, event: object) -> None:
        self.lines.append((event.level, event.message))

    def failure(self) -> str:
        """The last command rattler-build ran (`+ cmd`) before its first error, and that error."""
        errors = [i for i, (level, _) in enumerate(self.lines) if level == "error"]
        if not errors:
            return ""
        first = errors[0]
        ran = [text for _, text in self.lines[:first] if text.startswith("+ ")]
        error = " ".join(self.lines[first][1].split())
        return (f"`{ran[-1][2:]}`: " if ran else "") + error

    def write(self, path: Path) -> None:
        path.write_text("".join(f"{level}: {text}\n" for level, text in self.lines), encoding="utf-8")


def build_package(project: Project, work: Path, channel: Path) -> Path:
    """Build recipe.yaml into `work/out` and run the recipe's own tests; returns the .conda path."""
    from rattler_build import EnvironmentIsolation, Stage0Recipe, ToolConfiguration, VariantConfig

    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    # The stub python is this interpreter, so python_min is its version here; the shipped
    # python_min (variants.yaml) is checked by `check`, which renders the recipe with it.
    variants = VariantConfig({"python_min": ["%d.%d" % sys.version_info[:2]]})
    log = BuildLog()
    try:
        with rattler_cache(work / "cache"):
            results = Stage0Recipe.from_file(project.root / RECIPE_DIR / "recipe.yaml").run_build(
                variant_config=variants, output_dir=out, channels=[channel.as_uri()],
                tool_config=ToolConfiguration(test_strategy="native"),
                env_isolation=EnvironmentIsolation.STRICT, progress_callback=log)
    except Exception as exc:  # rattler-build's error types share no base class worth naming
        log.write(work / "rattler-build.log")
        what = log.failure()
        raise PackagingError(f"rattler-build failed: {one_line(exc)}" + (f"; {what}" if what else "")
                             + f" (log: {work / 'rattler-build.log'})") from None
    log.write(work / "rattler-build.log")
    packages = [Path(p) for result in results for p in result.packages]
    if len(packages) != 1 or packages[0].suffix != ".conda":
        raise PackagingError(f"expected one .conda package, got {packages}")
    return packages[0]


def publish(package: Path, dist: Path) -> Path:
    """Put the package into `dist` and index it: `dist` is then a channel conda can use."""
    from rattler import Subdir
    from rattler.index import index_fs

    artifact = dist / "noarch" / package.name
    artifact.parent.mkdir(parents=True, exist_ok=True)
    # conda also reads the platform's subdir of a channel: give it an (empty) index too.
    (dist / str(Subdir.current())).mkdir(exist_ok=True)
    shutil.copy2(package, artifact)
    asyncio.run(index_fs(dist, write_zst=False, write_shards=False, force=True))
    scratch = dist / ".tmp"  # the indexer's own scratch directory, left behind empty
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()
    return artifact


def install_package(project: Project, dist: Path, channel: Path, prefix: Path, cache: Path) -> None:
    """Solve over the local channels only (`dist`, then the stubs) and install into a fresh prefix."""
    from rattler import Subdir, install, solve

    shutil.rmtree(prefix, ignore_errors=True)

    async def run() -> None:
        records = await solve(sources=[dist.as_uri(), channel.as_uri()],
                              specs=[f"{project.name} =={project.version}"],
                              platforms=[str(Subdir.current()), "noarch"])
        await install(records, target_prefix=prefix, cache_dir=cache, show_progress=False)

    try:
        asyncio.run(run())
    except Exception as exc:  # solver and installer errors: one line, not a dump
        raise PackagingError(f"installing {project.name} from {dist} failed: {one_line(exc)}") from None


def run_in_prefix(prefix: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    executable = str(prefix / "bin" / argv[0])
    try:
        return subprocess.run([executable, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackagingError(f"{' '.join(argv)}: {one_line(exc)}") from None


def try_commands(project: Project, prefix: Path, data: Path) -> list[str]:
    """Run every command from the installed prefix; returns one line per run, raises on failure."""
    from kbtools.formats.sample import write_sample_study

    shutil.rmtree(data, ignore_errors=True)
    write_sample_study(data)
    ran = []
    where = run_in_prefix(prefix, ["python", "-c", f"import {project.import_name}; "
                                   f"print({project.import_name}.__file__)"], data.parent)
    if where.returncode != 0 or not where.stdout.strip().startswith(str(prefix)):
        raise PackagingError(f"the prefix imports {project.import_name} from {where.stdout.strip() or where.stderr}")
    ran.append(f"import {project.import_name} -> {where.stdout.strip()}")
    for command in project.scripts:
        done = run_in_prefix(prefix, [command, "--version"], data.parent)
        if done.returncode != 0 or done.stdout.strip() != f"{command} {project.version}":
            raise PackagingError(f"{command} --version: exit {done.returncode}, "
                                 f"stdout {done.stdout.strip()!r}, stderr {done.stderr.strip()[-300:]!r}")
        ran.append(done.stdout.strip())

    raw = next(data.rglob("raw.mda"))
    for argv, key in ((["mda-info", str(raw)], "dims"), (["kb-check", str(data)], "valid")):
        if argv[0] not in project.scripts:
            raise PackagingError(f"{argv[0]} is not in [project.scripts]")
        done = run_in_prefix(prefix, argv, data.parent)
        try:
            output = json.loads(done.stdout)
        except json.JSONDecodeError:
            output = None
        if done.returncode != 0 or not isinstance(output, dict) or key not in output:
            raise PackagingError(f"{' '.join(argv)}: exit {done.returncode}, stdout {done.stdout[:300]!r}, "
                                 f"stderr {done.stderr.strip()[-300:]!r}")
        ran.append(f"{argv[0]} {Path(argv[1]).relative_to(data.parent)}: exit 0, {key} = {output[key]}")
    return ran


def build_and_try(root: Path, work: Path, dist: Path, say=print) -> Path:
    """The whole offline pipeline: check, stub channel, build + recipe tests, install, run."""
    problems = check_recipe(root)
    if problems:
        raise PackagingError("recipe.yaml disagrees with pyproject.toml:\n  " + "\n  ".join(problems))
    say("check: recipe.yaml agrees with pyproject.toml")
    project = read_project(root)
    channel = work / "stub-channel"
    make_stub_channel(project, channel, work / "stub-site")
    say(f"stub channel: {channel}")
    package = build_package(project, work, channel)
    say(f"built, recipe tests passed: {package.name}")
    artifact = publish(package, dist)
    say(f"channel: {dist} (conda install -c {dist.as_uri()} -c conda-forge {project.name})")
    prefix = work / "prefix"
    install_package(project, dist, channel, prefix, work / "cache" / "pkgs")
    say(f"installed into a fresh prefix: {prefix}")
    for line in try_commands(project, prefix, work / "data" / "study"):
        say(f"  {line}")
    return artifact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conda-recipe/build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["check", "build"])
    parser.add_argument("--root", type=Path, default=ROOT, help="project checkout (default: this one)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: ROOT/build/conda)")
    parser.add_argument("--dist", type=Path, help="where the package goes (default: ROOT/dist/conda)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.step == "check":
            problems = check_recipe(root)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                return 1
            print("recipe.yaml agrees with pyproject.toml")
            return 0
        artifact = build_and_try(root, (args.work or root / "build" / "conda").resolve(),
                                 (args.dist or root / "dist" / "conda").resolve())
        print(artifact)
        return 0
    except PackagingError as exc:
        print(f"conda: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
