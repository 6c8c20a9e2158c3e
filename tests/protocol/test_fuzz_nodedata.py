"""The hub's compact node data (kbtools.protocol.nodedata) behaves as the parsed dict it replaces:
the same entries, the same object_hash, the same result or refusal for every delta, generated
(Hypothesis) from real diffs and from arbitrary JSON. KBTOOLS_FUZZ_EXAMPLES sets the number of
examples (`make fuzz` runs many more)."""
from __future__ import annotations

import copy
import os
import random

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402

from kbtools.protocol.errors import RemoteProtocolError  # noqa: E402
from kbtools.protocol.jsondiff import diff, patch  # noqa: E402
from kbtools.protocol.nodedata import NodeData  # noqa: E402
from kbtools.protocol.objecthash import object_hash  # noqa: E402

EXAMPLES = int(os.environ.get("KBTOOLS_FUZZ_EXAMPLES", "60"))
# KBTOOLS_FUZZ_SHRINK=0 (the mutation runs): a failure is reported as found, not shrunk first
SHRINK = os.environ.get("KBTOOLS_FUZZ_SHRINK", "1") != "0"
PHASES = tuple(p for p in Phase if SHRINK or p not in (Phase.shrink, Phase.explain))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100, phases=PHASES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SHA1S = [f"{i:02x}" * 20 for i in (0, 1, 2, 0x7f, 0x80, 0xfe, 0xff)] + ["00" * 19 + "ff"]
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60), text,
                        st.floats(allow_nan=False, allow_infinity=False))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)), max_leaves=8)
path = st.one_of(text, st.sampled_from(["a/b.txt", "é/ü 😀.bin", "x" * 70, "x" * 71]))
compact_entry = st.fixed_dictionaries({"path": path, "size": st.integers(0, 2**53 - 1)})
entry = st.one_of(compact_entry, compact_entry, json_value,
                  st.fixed_dictionaries({"path": path, "size": st.integers(2**53, 2**70)}))
key = st.one_of(st.sampled_from(SHA1S), st.sampled_from(SHA1S).map(str.upper), text,
                st.sampled_from(["ẞ", "😀", "\uffff", "z" * 40]))
files = st.dictionaries(key, entry, max_size=10)
node_data = st.one_of(
    st.fixed_dictionaries({"files_by_sha1": files}),
    st.fixed_dictionaries({"files_by_sha1": files}, optional={"zz": json_value, "A": json_value,
                                                                "😀": json_value}),
    st.dictionaries(text, json_value, max_size=3),
    st.fixed_dictionaries({"files_by_sha1": json_value}),
)


def reference(old: dict, delta) -> dict | None:
    """The old hub: patch the parsed dict; None for a refusal."""
    try:
        result = patch(copy.deepcopy(old), delta)
    except RemoteProtocolError:
        return None
    return result if isinstance(result, dict) else None


def check_same(nd: NodeData, data: dict) -> None:
    assert nd.to_dict() == data
    assert nd.object_hash() == object_hash(data)
    files = data.get("files_by_sha1")
    for k in SHA1S + list(files if isinstance(files, dict) else []) + ["nope"]:
        e = files.get(k) if isinstance(files, dict) else None
        want = (e["path"], e.get("size")) if isinstance(e, dict) and isinstance(e.get("path"), str) else None
        assert nd.lookup(k) == want
    assert nd.nbytes > 0


def apply(nd: NodeData, delta) -> bool:
    try:
        nd.apply_delta(delta)
        return True
    except RemoteProtocolError:
        return False


@FUZZ
@given(node_data, node_data)
def test_real_deltas_give_the_same_data_and_hash(old, new):
    nd = NodeData.from_data(old)
    check_same(nd, old)
    delta = diff(old, new)
    if delta is None:
        return
    want = reference(old, delta)
    assert apply(nd, delta) == (want is not None)
    if want is not None:
        check_same(nd, want)


@FUZZ
@given(node_data, st.one_of(json_value, st.fixed_dictionaries({"files_by_sha1": json_value}),
                            st.fixed_dictionaries({"files_by_sha1": st.dictionaries(key, json_value)})))
def test_arbitrary_deltas_are_applied_or_refused_as_the_dict_would(old, delta):
    nd = NodeData.from_data(old)
    want = reference(old, delta)
    assert apply(nd, delta) == (want is not None)
    if want is not None:
        check_same(nd, want)


def test_many_deltas_fold_the_overlay_into_the_arrays(monkeypatch):
    import kbtools.protocol.nodedata as nodedata
    monkeypatch.setattr(nodedata, "OVERLAY_MIN", 8)
    rng = random.Random(5)
    data = {"files_by_sha1": {f"{rng.getrandbits(160):040x}": {"path": f"d/{i}", "size": i}
                              for i in range(200)}, "x": 1}
    nd = NodeData.from_data(data)
    for step in range(40):
        new = copy.deepcopy(data)
        keys = list(new["files_by_sha1"])
        for k in rng.sample(keys, 5):
            del new["files_by_sha1"][k]
        for k in rng.sample(keys, 5):
            if k in new["files_by_sha1"]:
                new["files_by_sha1"][k]["path"] += "/renamed" * 10
        for _ in range(6):
            new["files_by_sha1"][f"{rng.getrandbits(160):040x}"] = {"path": f"n/{step}", "size": step}
        assert apply(nd, diff(data, new))
        data = new
        assert nd.object_hash() == object_hash(data)
        assert len(nd._overlay) <= max(8, len(nd._digests) // 4)
    check_same(nd, data)


def test_compact_form_is_small():
    rng = random.Random(1)
    data = {"files_by_sha1": {f"{rng.getrandbits(160):040x}": {"path": f"dataset{i % 10}/file{i:05d}.mda",
                                                                "size": i} for i in range(20000)}}
    nd = NodeData.from_data(data)
    assert nd.nbytes / 20000 < 40 + len("file00001.mda") + 4
    assert nd.object_hash() == object_hash(data)
