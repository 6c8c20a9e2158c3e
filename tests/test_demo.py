"""The demo builds a sample study, checks it, and prints one JSON result."""
from __future__ import annotations

import json
from pathlib import Path

from kbtools import demo


def test_demo_main(capsys):
    assert demo.main([]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ok"] is True and result["kb_check"]["exit_code"] == 0
    assert len(result["kb_check"]["output"]["datasets"]) == len(demo.DATASETS)
    assert "kb-check passed" in captured.err
    network = result["network"]
    assert network["ok"] is True and network["downloaded_sha1"] == network["sha1"]
    records = network["kb_get"]["records"]
    assert sorted(r["status"] for r in records) == ["ok", "ok", "ok"]
    assert set(network["sha1"]) == {"raw.mda", "geom.csv", "params.json"}
    assert "/download/dataset1/raw.mda" in network["through_hub"]["url"]
    assert network["through_hub"]["records"][0]["sha1"] == network["sha1"]["raw.mda"]
    assert network["share_url"] == f"kbucket://{network['node_id']}/"
    assert network["kbucket_url"] == f"kbucket://{network['node_id']}/dataset1"
    assert network["browse_url"] == f"{network['hub_url']}/?node_id={network['node_id']}"
    assert "stopped kb-host and kb-hub" in captured.err and "exit codes" not in captured.err
    assert not Path(result["study"]).exists()  # the temporary study is removed


def test_check_study_reports_a_broken_dataset(tmp_path):
    study = demo.build_study(tmp_path)
    (study / "dataset2" / "params.json").unlink()
    check = demo.check_study(study)
    assert check["exit_code"] == 1
    assert "NOT valid" in demo.describe(check)[1]
