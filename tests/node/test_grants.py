"""Grants of a private share (kbtools.node.grants): the token's one form, its signature, its scope,
expiry by the share's clock, the grant list, and where a request carries a token."""
from __future__ import annotations

import base64
import dataclasses
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kbtools.index.paths import UnsafePath
from kbtools.node.grants import (
    FORBIDDEN, SIGNED_PREFIX, UNAUTHORIZED, GrantError, GrantStore, check_grant, check_scope, covers,
    iso_time, new_grant_id, parse_expiry, read_token, redact, sign_grant, split_link, status_of,
    token_from,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC = KEY.public_key()
NODE = "0123456789ab"
GID = "0123456789abcdef"
FIELDS = {"v": 1, "node": NODE, "path": "data/set", "exp": 2_000_000_000, "iat": 1_000, "id": GID}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed(payload: bytes, key: rsa.RSAPrivateKey = KEY) -> str:
    """A token holding exactly `payload`, correctly signed: what only the share's key can make."""
    text = _b64(payload)
    signature = key.sign(SIGNED_PREFIX + text.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"kbt1.{text}.{_b64(signature)}"


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def token(path: str = "data/set", expires: int = 2_000_000_000, grant_id: str = GID) -> str:
    return sign_grant(KEY, NODE, path, expires, grant_id, 1_000)


def records(**changes: object) -> dict:
    return {GID: {"path": "data/set", "expires_unix": 2_000_000_000, "revoked": None, **changes}}


def test_a_token_holds_its_fields_in_one_canonical_form():
    made = token()
    prefix, payload, signature = made.split(".")
    assert prefix == "kbt1"
    assert _unb64(payload) == canonical(FIELDS)  # sorted keys, no spaces
    PUBLIC.verify(_unb64(signature), SIGNED_PREFIX + payload.encode(), padding.PKCS1v15(),
                  hashes.SHA256())
    g = read_token(made, PUBLIC)
    assert (g.grant_id, g.node_id, g.path, g.expires, g.issued) == (GID, NODE, "data/set",
                                                                    2_000_000_000, 1_000)
    assert read_token(token(""), PUBLIC).path == ""  # the whole share
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.path = ""  # type: ignore[misc]


def test_a_path_beyond_ascii_is_carried_in_ascii():
    made = token("données/été")
    assert _unb64(made.split(".")[1]).isascii()
    assert read_token(made, PUBLIC).path == "données/été"


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", ".kbucket/private.pem", "a/", "a\0b"])
def test_a_grant_for_an_unsafe_path_is_never_made(path):
    with pytest.raises(UnsafePath):
        token(path)


@pytest.mark.parametrize("grant_id", ["0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", ""])
def test_a_grant_id_is_16_lower_case_hex_digits(grant_id):
    with pytest.raises(ValueError, match="16 hex digits"):
        token(grant_id=grant_id)
    assert len(new_grant_id()) == 16 and new_grant_id() != new_grant_id()


@pytest.mark.parametrize("changes", [
    {"v": 2}, {"v": 0}, {"v": True}, {"v": 1.0}, {"exp": 2e9}, {"exp": True}, {"iat": "1000"}, {"iat": None},
    {"node": 12}, {"path": None}, {"path": "../up"}, {"path": "a//b"}, {"id": "0123456789ABCDEF"},
    {"id": 7}, {"extra": 1},
])
def test_content_of_the_wrong_form_is_refused_even_when_signed(changes):
    with pytest.raises(GrantError, match="^Invalid grant: malformed content$") as caught:
        read_token(signed(canonical({**FIELDS, **changes})), PUBLIC)
    assert caught.value.status == UNAUTHORIZED == 401


@pytest.mark.parametrize("payload", [
    b"not json", b"\xff\xfe", b"[1, 2]", b'"text"',
    json.dumps(FIELDS).encode(),  # spaces: not the canonical form
    canonical({k: v for k, v in FIELDS.items() if k != "iat"}),  # a field missing
    canonical(FIELDS)[:-1] + b',"id":"fedcba9876543210"}',  # a repeated key
])
def test_payloads_that_are_not_one_canonical_object_are_refused(payload):
    with pytest.raises(GrantError, match="^Invalid grant: malformed content$"):
        read_token(signed(payload), PUBLIC)


def test_a_signature_by_another_key_or_of_other_content_is_refused():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(GrantError, match="^Invalid grant: the signature does not match this share's key$"):
        read_token(signed(canonical(FIELDS), other), PUBLIC)
    prefix, _, signature = token().split(".")
    forged = _b64(canonical({**FIELDS, "path": ""}))
    with pytest.raises(GrantError, match="signature"):
        read_token(f"{prefix}.{forged}.{signature}", PUBLIC)


def test_only_the_one_spelling_of_a_token_is_taken():
    made = token()
    prefix, payload, signature = made.split(".")
    bad = ["", "kbt1", "kbt1..", f"kbt2.{payload}.{signature}", f"{made}=", f"{made}.x",
           f"kbt1.{payload}=.{signature}", made + "A" * 5000, made.replace("-", "+"), f" {made}",
           made + "\n", made.encode(), None, 12]
    # The same bytes in another base64url spelling: a 100-byte payload leaves the last character
    # four bits that carry nothing; setting the lowest one changes the text, not the bytes.
    longer = token("data/sets")
    _, payload, signature = longer.split(".")
    assert len(_unb64(payload)) % 3 == 1
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = payload[:-1] + alphabet[alphabet.index(payload[-1]) | 1]
    assert respelled != payload and _unb64(respelled) == _unb64(payload)
    bad.append(f"kbt1.{respelled}.{signature}")
    # and a spelling that sorts before the one canonical spelling ("0" < "w" in ASCII)
    data = b"x" * 99 + b"\x03"
    assert _b64(data)[-1] == "w" and _unb64(_b64(data)[:-1] + "0") == data
    bad.append(f"kbt1.{_b64(data)[:-1]}0.{signature}")
    for value in bad:
        with pytest.raises(GrantError, match="^Invalid grant: not a kbucket grant token$"):
            read_token(value, PUBLIC)


def test_the_share_honours_a_grant_it_made_for_itself_until_it_expires():
    made = token()
    assert check_grant(made, PUBLIC, NODE, records(), now=1_999_999_999).grant_id == GID
    with pytest.raises(GrantError, match=f"^Grant {GID} expired at 2033-05-18T03:33:20Z$"):
        check_grant(made, PUBLIC, NODE, records(), now=2_000_000_000)
    for other in ("aaaaaaaaaaaa", "000000000000"):
        with pytest.raises(GrantError, match="^Invalid grant: it was issued for another share$"):
            check_grant(made, PUBLIC, other, records(), now=0)
    for listed in ({}, records(path="data"), records(path="data/zzz"), records(path=""),
                   records(expires_unix=2_000_000_001), records(expires_unix=1_999_999_999),
                   {GID: "not a record"}):
        with pytest.raises(GrantError, match=f"^Invalid grant {GID}: this share has no record of it$"):
            check_grant(made, PUBLIC, NODE, listed, now=0)
    with pytest.raises(GrantError, match=f"^Grant {GID} was revoked$"):
        check_grant(made, PUBLIC, NODE, records(revoked="2020-01-01T00:00:00Z"), now=0)
    # without `now`, the share's clock: this grant expired in 1970
    with pytest.raises(GrantError, match="expired at 1970-01-01T00:00:10Z"):
        check_grant(token(expires=10), PUBLIC, NODE, records(expires_unix=10))


def test_a_grant_covers_its_path_and_below_segment_by_segment():
    assert covers("data/set", "data/set") and covers("data/set", "data/set/x/y")
    assert not covers("data/set", "data/settle") and not covers("data/set", "data")
    assert not covers("data/set", "other/data/set")
    assert covers("", "anything") and covers("", "")
    assert covers("data/set", "/".join(["data", "set"]))  # equal, not the same object
    g = read_token(token(), PUBLIC)
    assert g.covers("data/set/raw.mda") and not g.covers("data")
    check_scope(g, "data/set/raw.mda")
    with pytest.raises(GrantError, match=f"^Grant {GID} does not cover this path$") as caught:
        check_scope(g, "data/other")
    assert caught.value.status == FORBIDDEN == 403


def test_iso_time_is_utc_to_the_second():
    assert iso_time(0) == "1970-01-01T00:00:00Z"
    assert iso_time(1.9) == "1970-01-01T00:00:01Z"
    assert iso_time(2_000_000_000) == "2033-05-18T03:33:20Z"


NOW = 1_700_000_000.5


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1), ("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2_592_000), ("2w", 1_209_600),
    (" 1d\n", 86400), ("999999s", 999_999),
])
def test_a_duration_counts_from_now(text, seconds):
    assert parse_expiry(text, NOW) == 1_700_000_000 + seconds


@pytest.mark.parametrize("text, moment", [
    ("2099-01-31", 4_073_500_800 + 86400),  # the end of that day, UTC
    ("2099-01-31T12:00:00Z", 4_073_500_800 + 43200),
    ("2099-01-31T12:00:00", 4_073_500_800 + 43200),  # no zone: UTC
    ("2099-01-31T12:00:00+02:00", 4_073_500_800 + 36000),
])
def test_a_date_or_a_time_is_when_it_ends(text, moment):
    assert parse_expiry(text, NOW) == moment


@pytest.mark.parametrize("text, reason", [
    ("0d", "the duration must be positive"), ("0s", "the duration must be positive"),
    ("1234567s", "not a duration"), ("soon", "not a duration"), ("-3d", "not a duration"),
    ("30x", "not a duration"), ("2099-02-30", "not a duration"),
    ("2001-01-01", "2001-01-01 is in the past"),
    ("2023-11-14T22:13:20Z", "is in the past"),  # exactly now: past
])
def test_an_expiry_that_is_not_in_the_future_is_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_expiry(text, 1_700_000_000)


def test_a_token_is_found_in_the_header_then_bearer_then_the_query():
    q = {"token": "kbt1.q.q"}
    assert token_from(q, {"X-Kbucket-Token": " kbt1.h.h ", "Authorization": "Bearer kbt1.b.b"}) == "kbt1.h.h"
    assert token_from(q, {"Authorization": "Bearer kbt1.b.b "}) == "kbt1.b.b"
    assert token_from(q, {"Authorization": "bEaReR kbt1.b.b"}) == "kbt1.b.b"
    assert token_from(q, {"X-Kbucket-Token": "", "Authorization": "Basic abc"}) == "kbt1.q.q"
    assert token_from(q, {"Authorization": "Digest abcdefg"}) == "kbt1.q.q"
    assert token_from({"token": " kbt1.q.q"}, {}) == " kbt1.q.q"  # a query value as it was sent
    assert token_from({}, {}) is None and token_from({"token": ""}, {}) is None


def test_a_link_splits_into_its_url_and_its_token_and_logs_never_hold_one():
    made = token()
    assert split_link(f"kbucket://abc/d?x?token={made}") == ("kbucket://abc/d?x", made)
    assert split_link(f"http://h/a?b=1&token={made}") == ("http://h/a?b=1", made)
    assert split_link("kbucket://abc/d?x") == ("kbucket://abc/d?x", None)
    assert split_link(f"kbucket://abc/d?token={made}&more") == (f"kbucket://abc/d?token={made}&more", None)
    assert redact(f"GET /x?token={made} done") == "GET /x?token=kbt1.… done"
    assert redact("kbt1.abc and kbt1.abc.def") == "kbt1.… and kbt1.…"
    assert redact("no token here") == "no token here"


def test_the_grant_list_is_kept_private_and_revocation_is_at_once(tmp_path: Path):
    store = GrantStore(tmp_path)
    assert store.records() == {}  # no file yet
    record = {"grant_id": GID, "path": "data/set", "expires_unix": 2_000_000_000, "label": "Bob"}
    store.add(record)
    assert store.records() == {GID: record}
    listed = tmp_path / ".kbucket" / "grants.json"
    assert os.stat(listed).st_mode & 0o777 == 0o600
    store.add({**record, "grant_id": "fedcba9876543210", "label": "pour Amélie"})
    assert listed.read_text(encoding="utf-8") == (  # readable as it is, names as they are written
        '{\n  "grants": {\n    "0123456789abcdef": {\n      "grant_id": "0123456789abcdef",\n'
        '      "path": "data/set",\n      "expires_unix": 2000000000,\n      "label": "Bob"\n    },\n'
        '    "fedcba9876543210": {\n      "grant_id": "fedcba9876543210",\n      "path": "data/set",\n'
        '      "expires_unix": 2000000000,\n      "label": "pour Amélie"\n    }\n  }\n}\n')
    other = GrantStore(tmp_path)  # another process's view, e.g. kb-url --revoke
    revoked = other.revoke(GID, 2_000_000_000)
    assert revoked == {**record, "revoked": "2033-05-18T03:33:20Z"}
    assert other.revoke(GID, 0)["revoked"] == "2033-05-18T03:33:20Z"  # the first time stays
    assert other.revoke("1111111111111111", 0) is None
    assert store.records()[GID]["revoked"] == "2033-05-18T03:33:20Z"  # seen by the share at once


@pytest.mark.parametrize("text", ["not json", "[]", '{"grants": []}', '{"other": {}}'])
def test_an_unreadable_grant_list_honours_no_grant(tmp_path: Path, text):
    (tmp_path / ".kbucket").mkdir()
    (tmp_path / ".kbucket" / "grants.json").write_text(text)
    assert GrantStore(tmp_path).records() == {}


def test_only_records_under_a_grant_id_are_read(tmp_path: Path):
    (tmp_path / ".kbucket").mkdir()
    (tmp_path / ".kbucket" / "grants.json").write_text(json.dumps(
        {"grants": {GID: {"path": ""}, "nothex": {"path": ""}, "fedcba9876543210": "text"}}))
    assert GrantStore(tmp_path).records() == {GID: {"path": ""}}


def test_a_grants_status_by_the_clock():
    assert status_of({"expires_unix": 10, "revoked": "2020-01-01T00:00:00Z"}, 0) == "revoked"
    assert status_of({"expires_unix": 10}, 9) == "active"
    assert status_of({"expires_unix": 10}, 10) == "expired"
    assert status_of({"expires_unix": 10}, 11) == "expired"
    assert status_of({"expires_unix": "10"}, 0) == "expired"
    assert status_of({}, 0) == "expired"
