"""One way to say that a record failed (README, "Records"): every command that prints one record
per item (kb-index's files, kb-url, kb-url's grants, kb-get) says how it went with the same keys,
in its schema and in what it prints."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from kbtools.cli.base import failure

from ..conftest import SCHEMAS

STATUSES = {"ok", "notneeded", "impossible", "error"}
FAILED = {"impossible", "error"}
#: schema: the records of it that stand for one item (not kb-index's dataset verdicts or summary).
PER_ITEM = {"kb-index-record": ("file", "file_error"), "kb-url": None, "kb-grant": None,
            "kb-get-record": None}


def item_records(name: str) -> Iterator[dict[str, Any]]:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    defs = PER_ITEM[name]
    if defs is not None:
        yield from (schema["$defs"][d] for d in defs)
    else:
        yield from schema.get("oneOf", [schema])


def statuses(record: dict[str, Any]) -> set[str]:
    status = record["properties"]["status"]
    return {status["const"]} if "const" in status else set(status["enum"])


@pytest.mark.parametrize("name", sorted(PER_ITEM))
def test_every_item_record_has_a_status_and_a_failed_one_a_message(name):
    for record in item_records(name):
        props = record["properties"]
        assert "status" in record["required"], record
        assert statuses(record) <= STATUSES
        assert "error" not in props  # the code of a failure is `code`
        if statuses(record) & FAILED:
            assert {"message", "code"} <= set(props)
            assert props["message"]["type"] == "string"
            if statuses(record) <= FAILED:
                assert "message" in record["required"]
        else:
            assert not {"message", "code"} & set(props)


def test_the_failure_keys():
    assert failure("not-found", "no such file") == {"status": "error", "code": "not-found",
                                                    "message": "no such file"}
    assert failure(None, "disk full") == {"status": "error", "message": "disk full"}
