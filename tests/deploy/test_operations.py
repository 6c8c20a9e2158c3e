"""docs/operations.md, run: the systemd units verified by systemd-analyze, every target of
docs/deploy/study.mk run on a sample study, and a hub restarted under a share that reconnects to
the same id."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.netfixtures import ROOT

UNITS = ROOT / "docs" / "deploy" / "systemd"
ANALYZE = shutil.which("systemd-analyze")


def rendered_unit(name: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's command (systemd-analyze checks that
    the program exists)."""
    text = (UNITS / name).read_text()
    text = re.sub(r"/usr/bin/(kb-\w+)", lambda m: str(ROOT / "bin" / m[1]), text)
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["kb-hub.service", "kb-host.service"])
def test_systemd_units_verify(name, tmp_path):
    if ANALYZE is None:  # make test-deps installs systemd; on a system without it, say why
        pytest.fail("systemd-analyze is missing: run `make test-deps` (apt-get install systemd)")
    unit = rendered_unit(name, tmp_path)
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    text = unit.read_text()
    assert "Restart=on-failure" in text
    # every option of ExecStart is one the command has
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", text.replace("\\\n", " "), re.M)[1].split()
    helptext = subprocess.run([exec_start[0], "--help"], capture_output=True, text=True, check=True).stdout
    for word in exec_start[1:]:
        if word.startswith("--"):
            assert word in helptext, word


def test_systemd_analyze_finds_a_broken_unit(tmp_path):
    """The check above would see a mistake: a unit with a relative program is refused."""
    assert ANALYZE is not None
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=kb-hub here\nRestart=sometimes\n")
    result = subprocess.run([ANALYZE, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 or result.stderr.strip()


def test_study_makefile_indexes_checks_and_publishes(tmp_path):
    study = tmp_path / "study"
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "kbtools.formats.sample", str(study)],
                   check=True, cwd=ROOT, capture_output=True)
    from tests.hub.children import make_identity  # as kb-host's first run: keys and node id

    make_identity(study, "leaf", {"name": "study", "parent_hub_url": "."})
    for target in ("index", "check", "publish"):
        result = subprocess.run(["make", "-s", "-f", str(ROOT / "docs" / "deploy" / "study.mk"),
                                 f"STUDY={study}", f"KB={ROOT / 'bin'}/", target],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (target, result.stderr)
    out = study / ".kbucket" / "published"
    index = [json.loads(l) for l in (out / "index.ndjson").read_text().splitlines()]
    assert index[-1]["type"] == "summary"
    assert json.loads((out / "check.json").read_text())["valid"] is True
    urls = [json.loads(l) for l in (out / "urls.ndjson").read_text().splitlines()]
    assert urls and all(u["url"].startswith("kbucket://") and u["sha1_url"].startswith("sha1://")
                        for u in urls)
    assert any(u["path"].endswith("raw.mda") for u in urls)
    # the crontab line of docs/operations.md runs the same command
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "make -s -f /etc/kbucket/study.mk STUDY=/data/study publish" in doc


def test_a_restarted_hub_keeps_its_id_and_its_children(network):
    hub = network.hub("hub")
    share = network.share("share", parent=hub, files={"a.txt": b"a"})
    node_id = hub.node_id
    hub.stop()
    hub.start()  # the same directory and port: the upgrade path
    assert hub.node_id == node_id
    event = share.wait_event(lambda e: e.get("event") == "reconnected", timeout=60)
    assert event["parent_hub_url"] == hub.url
