"""Canonical JSON and signatures against every recorded child -> hub frame."""
from __future__ import annotations

import json

import pytest

from kbtools.node.identity import node_id_for_public_key
from kbtools.protocol.canonical import canonical_json, is_array_index, js_number, sign_message, verify_message
from kbtools.protocol.envelope import Signer
from tests.protocol.vectors import child_frames, identities_by_id


def test_every_recorded_signature_verifies_and_resigns_identically():
    ids = identities_by_id()
    frames = child_frames()
    assert len(frames) == 81
    keys = {i: ident.private_key() for i, ident in ids.items()}
    for rec in frames:
        outer = json.loads(rec["frame"])
        ident = ids[outer["node_id"]]
        assert verify_message(ident.public_pem, outer["message"], outer["signature"])
        assert sign_message(keys[outer["node_id"]], outer["message"]) == outer["signature"]


def test_register_frames_carry_the_key_of_their_id():
    for rec in child_frames():
        outer = json.loads(rec["frame"])
        if "public_key" in outer:
            assert outer["message"]["command"] == "register_child_node"
            assert node_id_for_public_key(outer["public_key"]) == outer["node_id"]


def test_signer_rebuilds_a_recorded_frame_byte_for_byte():
    ids = identities_by_id()
    for rec in child_frames():
        outer = json.loads(rec["frame"])
        msg = outer["message"]
        fields = {k: v for k, v in msg.items() if k not in ("timestamp", "node_id", "network_type")}
        rebuilt = Signer(ids[outer["node_id"]]).frame(fields, msg["timestamp"])
        assert rebuilt == rec["frame"]


def test_a_tampered_message_does_not_verify():
    rec = child_frames()[0]
    outer = json.loads(rec["frame"])
    outer["message"]["passcode"] = "other"
    assert not verify_message(outer["public_key"], outer["message"], outer["signature"])
    assert not verify_message(outer["public_key"], outer["message"], "zz")
    assert not verify_message("not a key", outer["message"], outer["signature"])


def test_js_key_order_and_escapes():
    assert canonical_json({"b": 1, "10": 2, "a": 3, "2": 4, "01": 5}) == '{"2":4,"10":2,"b":1,"a":3,"01":5}'
    assert canonical_json({"s": "é/\u2028\x7f\x01\"\\\n"}) == '{"s":"é/\u2028\x7f\\u0001\\"\\\\\\n"}'
    assert canonical_json({"x": 1.0, "y": [2.0]}) == '{"x":1,"y":[2]}'
    assert canonical_json({"x": 1.5, "y": 1e21}) == '{"x":1.5,"y":1e+21}'
    assert canonical_json("\ud800") == '"\\ud800"'
    assert is_array_index("0") and not is_array_index("00") and not is_array_index("-1")


@pytest.mark.parametrize("value,text", [
    (10000000000000000.0, "10000000000000000"), (1e21, "1e+21"), (0.1, "0.1"), (1e-7, "1e-7"),
    (0.000001, "0.000001"), (-2.5e30, "-2.5e+30"), (123.456, "123.456"), (5, "5"),
])
def test_js_number(value, text):
    assert js_number(value) == text


# Each case below is one that plain json.dumps writes differently; the fast-path detector must
# send it to the JS path however deep it sits.
@pytest.mark.parametrize("value,text", [
    ({"a": {"10": 1, "2": 2}}, '{"a":{"2":2,"10":1}}'),
    ({"a": {"b": 1.0}}, '{"a":{"b":1}}'),
    ([{"10": 1, "2": 2}], '[{"2":2,"10":1}]'),
    ([[1.0]], "[[1]]"),
    ({"a": [{"b": [2.0]}]}, '{"a":[{"b":[2]}]}'),
    ({"s": "x", "i": 3, "a": {"b": [1e-7]}}, '{"s":"x","i":3,"a":{"b":[1e-7]}}'),
    ([1e-7], "[1e-7]"),
    ({"a": 1e-7}, '{"a":1e-7}'),
    ({"a": 1e-7, "b": 1}, '{"a":1e-7,"b":1}'),
    ([1e-7, 1, "x"], '[1e-7,1,"x"]'),
    ({"10": 1, "2": 2}, '{"2":2,"10":1}'),  # all keys integer-like: reordered all the same
    ({"2": 1, "10": 2, "1": 3}, '{"1":3,"2":1,"10":2}'),
    ({"b": 1, "a": 2}, '{"b":1,"a":2}'),  # other keys keep their insertion order
])
def test_js_differences_are_found_at_any_depth(value, text):
    assert canonical_json(value) == text
    assert canonical_json(json.loads(json.dumps(value))) == text


def test_the_slow_path_writes_every_other_type_like_json_stringify():
    # a float that is not integral sends the whole value down the slow path
    value = {"f": 1.5, "l": [1, -2, "s", True, False, None, [], {}], "s": "é\u2028\"\\\n\x01",
             "i": 10**15, "t": True, "n": None, "o": {"x": [0.5, "y"]}, "e": ""}
    assert canonical_json(value) == ('{"f":1.5,"l":[1,-2,"s",true,false,null,[],{}],'
                                     '"s":"é\u2028\\"\\\\\\n\\u0001","i":1000000000000000,'
                                     '"t":true,"n":null,"o":{"x":[0.5,"y"]},"e":""}')
    assert canonical_json([0.5, "\ud800", 1]) == '[0.5,"\\ud800",1]'


def test_non_finite_numbers_are_null():
    # json.loads accepts NaN and Infinity from the network; JSON.stringify writes them as null
    message = json.loads('{"a": NaN, "b": [Infinity, -Infinity], "c": {"d": NaN}}')
    assert canonical_json(message) == '{"a":null,"b":[null,null],"c":{"d":null}}'
    assert canonical_json(float("inf")) == "null"
    assert js_number(float("nan")) == js_number(float("-inf")) == "null"


def test_array_index_keys_stop_at_two_to_the_32_minus_2():
    assert is_array_index("4294967294") and not is_array_index("4294967295")
    assert canonical_json({"b": 0, "4294967295": 1, "4294967294": 2, "7": 3}) \
        == '{"7":3,"4294967294":2,"b":0,"4294967295":1}'
    # digits outside ASCII are not integer-like (and int() of "²" would raise)
    assert canonical_json({"b": 0, "\u0663": 1, "\u00b2": 2}) == '{"b":0,"\u0663":1,"\u00b2":2}'
    assert not is_array_index("") and not is_array_index("1.0") and not is_array_index("+1")


@pytest.mark.parametrize("value,text", [
    (123.0, "123"), (1e20, "100000000000000000000"), (1.5e22, "1.5e+22"), (-1.5e22, "-1.5e+22"),
    (1e21, "1e+21"), (-0.0, "0"), (0.0, "0"), (1e-6, "0.000001"), (1.5e-7, "1.5e-7"),
    (123456.789, "123456.789"), (0.001234, "0.001234"), (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"), (2.0**60, "1152921504606847000"),
    (-7, "-7"), (12.5, "12.5"), (1.0, "1"), (-1.0, "-1"), (2.0, "2"), (1234567.0, "1234567"), (1e15 + 0.5, "1000000000000000.5"),
])
def test_js_number_edges(value, text):
    assert js_number(value) == text
    assert canonical_json([value]) == f"[{text}]"


def test_integral_floats_above_two_to_the_53_keep_the_shortest_digits():
    # int(6.447140947809213e16) is 64471409478092128; Number#toString writes 64471409478092130
    assert canonical_json({"t": 6.447140947809213e16}) == '{"t":64471409478092130}'
    assert canonical_json([2.0**53, -(2.0**53)]) == "[9007199254740992,-9007199254740992]"


def test_js_number_refuses_bools():
    with pytest.raises(TypeError):
        js_number(True)


def test_only_a_fractional_or_huge_float_takes_the_slow_writer(monkeypatch):
    """json.dumps (C) writes everything else: the slow writer is only for numbers it prints wrong."""
    import kbtools.protocol.canonical as canonical

    value = {"10": 1, "2": [1.0, -3.0, 2.0**53, 9e15], "s": "x", "n": None, "t": True, "i": 7}
    expected = '{"2":[1,-3,9007199254740992,9000000000000000],"10":1,"s":"x","n":null,"t":true,"i":7}'
    slow_calls = []
    real_slow = canonical._dump_slow
    monkeypatch.setattr(canonical, "_dump_slow", lambda obj: slow_calls.append(obj) or real_slow(obj))
    assert canonical_json(value) == expected
    assert canonical_json([123.0, "a"]) == '[123,"a"]'
    assert canonical_json({"s": "x", "l": [1, None, {"a": True}]}) == '{"s":"x","l":[1,null,{"a":true}]}'
    assert slow_calls == []
    assert canonical_json([0.5]) == "[0.5]" and canonical_json([2.0**54]) == "[18014398509481984]"
    assert [0.5] in slow_calls and [2.0**54] in slow_calls
