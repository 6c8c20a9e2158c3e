"""Property tests of URL parsing: whatever a user types, a safe reference or one line of BadUrl.

Hostile URLs never yield a path with ``..``, ``.``, an empty segment, NUL, or an absolute path, nor a
traceback; a hub setting is an http(s) URL or a usage error."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kbtools.client.errors import BadHubUrl, BadUrl
from kbtools.client.urls import NODE_ID_RE, Sha1Ref, check_hub_url, parse_url

SHA1 = "0e0641d1e71dc72578c5d7525d7c26c9c0901b88"

PREFIXES = ["kbucket://3dfec2317053/", "kbucket://", "sha1://" + SHA1 + "/", "sha1://" + SHA1, "sha1://",
            "http://h/3dfec2317053/download/", "https://h:1/p/3dfec2317053/api/readdir/", "http://",
            "https://", ""]
# The characters that make paths interesting, and a few ordinary ones.
PIECES = st.sampled_from(["/", ".", "..", "%", "%2e", "%2E", "%2f", "%00", "\x00", "%ff", "\n", "?", "#",
                          ":", "[", "]", "@", "\\", " ", "a", "b", "ü", "3dfec2317053", "download", "~"])


def _assert_safe_relpath(path):
    assert not path.startswith("/") and "\x00" not in path
    if path:
        assert all(segment not in ("", ".", "..") for segment in path.split("/"))


@settings(max_examples=600, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), pieces=st.lists(PIECES, max_size=12), tail=st.text(max_size=8))
def test_no_url_yields_an_unsafe_path_or_a_traceback(prefix, pieces, tail):
    url = prefix + "".join(pieces) + tail
    try:
        ref = parse_url(url)
    except BadUrl as exc:
        assert "\n" not in str(exc) and "\x00" not in str(exc)
        return
    if isinstance(ref, Sha1Ref):
        if ref.name is not None:
            assert ref.name not in ("", ".", "..") and "/" not in ref.name and "\x00" not in ref.name
    else:
        _assert_safe_relpath(ref.path)
        assert NODE_ID_RE.match(ref.node_id)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_hub_setting_is_a_url_or_a_usage_error(value):
    try:
        checked = check_hub_url(value, "KBUCKET_URL")
    except BadHubUrl as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc) and "\x00" not in str(exc)
        return
    assert checked.startswith(("http://", "https://"))
