"""URL forms the client accepts, and the API URLs it builds."""
from __future__ import annotations

import dataclasses

import pytest

from kbtools.client.errors import BadHubUrl, BadUrl
from kbtools.client.urls import (
    HttpRef,
    KbucketRef,
    Sha1Ref,
    check_hub_url,
    configured_hub,
    content_url,
    download_url,
    encode_found_url,
    find_url,
    parse_url,
    prv_url,
    readdir_url,
)

SHA1 = "0e0641d1e71dc72578c5d7525d7c26c9c0901b88"


def test_kbucket_file_path_is_taken_literally():
    ref = parse_url("kbucket://3dfec2317053/sp ace/f #1?.txt")
    assert ref == KbucketRef("kbucket://3dfec2317053/sp ace/f #1?.txt", "3dfec2317053", "sp ace/f #1?.txt", False)


@pytest.mark.parametrize("url,path", [("kbucket://3dfec2317053", ""), ("kbucket://3dfec2317053/", ""),
                                      ("kbucket://3dfec2317053/dataset1/", "dataset1")])
def test_kbucket_directory_forms(url, path):
    ref = parse_url(url)
    assert isinstance(ref, KbucketRef) and ref.path == path and ref.is_dir_hint


def test_sha1_url_with_and_without_name():
    assert parse_url(f"sha1://{SHA1.upper()}") == Sha1Ref(f"sha1://{SHA1.upper()}", SHA1, None)
    assert parse_url(f"sha1://{SHA1}/raw.mda").name == "raw.mda"
    assert parse_url(f"sha1://{SHA1}/a/b/raw.mda").name == "raw.mda"


def test_http_download_url_of_a_hub_is_decoded_once():
    ref = parse_url("http://127.0.0.1:3000/3dfec2317053/download/sp%20ace/f%20%231%3F.txt")
    assert ref == HttpRef("http://127.0.0.1:3000/3dfec2317053/download/sp%20ace/f%20%231%3F.txt",
                          "http://127.0.0.1:3000", "3dfec2317053", "sp ace/f #1?.txt", False)


def test_http_readdir_url_is_a_directory():
    ref = parse_url("https://hub.example/prefix/3dfec2317053/api/readdir/dataset1")
    assert isinstance(ref, HttpRef) and ref.base == "https://hub.example/prefix" and ref.is_dir_hint


@pytest.mark.parametrize("url", [
    "ftp://x/y", "kbucket://", "kbucket://bad id/x", "kbucket://3dfec2317053/../etc/passwd",
    "kbucket://3dfec2317053/a//b", "sha1://1234", "sha1://" + "g" * 40, "http://127.0.0.1:1/nothing/here",
    "http:///3dfec2317053/download/x", "http://h/3dfec2317053/download/%2e%2e/x", "http://h/3dfec2317053/download/%ff",
    "/local/path",
])
def test_bad_urls_are_refused_with_a_reason(url):
    with pytest.raises(BadUrl) as info:
        parse_url(url)
    assert url in str(info.value)


def test_api_urls_encode_every_segment():
    assert download_url("http://h:1/", "abc", "a b/c#?ü") == "http://h:1/abc/download/a%20b/c%23%3F%C3%BC"
    assert prv_url("http://h:1", "abc", "x.txt") == "http://h:1/abc/prv/x.txt"
    assert readdir_url("http://h:1", "abc", "") == "http://h:1/abc/api/readdir/"
    assert find_url("http://h:1", SHA1) == f"http://h:1/find/{SHA1}/"
    assert find_url("http://h:1", SHA1, "abc") == f"http://h:1/abc/api/find/{SHA1}/"


def test_found_urls_with_raw_paths_are_encoded_and_encoded_ones_kept():
    raw = "http://h:1/abc/download/sp ace/f #1?.txt"
    assert encode_found_url(raw, "abc", "sp ace/f #1?.txt") == "http://h:1/abc/download/sp%20ace/f%20%231%3F.txt"
    encoded = "http://h:1/abc/download/sp%20ace/f%20%231%3F.txt"
    assert encode_found_url(encoded, "abc", "sp ace/f #1?.txt") == encoded
    assert encode_found_url("http://h:1/other/x", "abc", "x") == "http://h:1/other/x"


# -- hostile URLs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "kbucket://3dfec2317053/a/./b", "kbucket://3dfec2317053/./a", "kbucket://3dfec2317053/a/.",
    "kbucket://3dfec2317053/a\x00b", "kbucket://3dfec2317053/a/\x00", f"sha1://{SHA1}/a\x00b",
    f"sha1://{SHA1}/\x00", "http://h/3dfec2317053/download/a%00b", "http://h/3dfec2317053/download/a/%2e/b",
    "http://[/3dfec2317053/download/x", "http://h:99999/3dfec2317053/download/x",
    "http://h:port/3dfec2317053/download/x", "https://:80/3dfec2317053/download/x",
])
def test_hostile_urls_are_refused_in_one_line(url):
    with pytest.raises(BadUrl) as info:
        parse_url(url)
    message = str(info.value)
    assert "\n" not in message and "\x00" not in message


@pytest.mark.parametrize("url,name", [
    (f"sha1://{SHA1}/..", None), (f"sha1://{SHA1}/.", None), (f"sha1://{SHA1}/a/..", None),
    (f"sha1://{SHA1}/", None), (f"sha1://{SHA1}//", None),
    (f"sha1://{SHA1}/a/b/", "b"), (f"sha1://{SHA1}/raw.mda/", "raw.mda"), (f"sha1://{SHA1}/../x", "x"),
])
def test_sha1_names_are_plain_file_names(url, name):
    assert parse_url(url).name == name


@pytest.mark.parametrize("url,path", [
    ("http://h/3dfec2317053/download/dataset1/", "dataset1"),
    ("http://h/3dfec2317053/download/", ""),
    ("http://h/3dfec2317053/download/a%20b/c/", "a b/c"),
])
def test_http_download_url_with_a_trailing_slash_is_a_directory(url, path):
    ref = parse_url(url)
    assert isinstance(ref, HttpRef) and ref.is_dir_hint and ref.path == path


def test_hub_urls_are_checked_and_name_where_they_came_from():
    assert check_hub_url("http://127.0.0.1:3000/") == "http://127.0.0.1:3000"
    assert check_hub_url("https://hub.example/prefix") == "https://hub.example/prefix"
    for bad in ("notaurl", "127.0.0.1:3000", "ftp://h", "http://", "http://h:99999", "http://h/?x=1"):
        with pytest.raises(BadHubUrl) as info:
            check_hub_url(bad, "KBUCKET_URL")
        assert info.value.exit_code == 2
        assert str(info.value).startswith(f"KBUCKET_URL={bad} is not a hub URL")
        assert "http://127.0.0.1:3000" in str(info.value)  # what a valid one looks like


# -- hub content URLs ---------------------------------------------------------------------------------

FOO = "f1d2d2f924e986ac86fdf7b36c94bcdf32beec15"  # sha1 of "foo\n"


@pytest.mark.parametrize("name,tail", [
    (None, ""), ("", ""), ("raw.mda", "/raw.mda"), ("data.bin", "/data.bin"),  # sorting before or after the SHA-1
    ("a b/c#?ü", "/a%20b%2Fc%23%3F%C3%BC"),  # one segment: even a slash is encoded
])
def test_content_url_names_the_file_in_one_encoded_segment(name, tail):
    assert content_url("http://h:1/p/", FOO, name) == f"http://h:1/p/sha1/{FOO}{tail}"


def test_content_url_leaves_out_a_name_that_is_the_sha1_itself():
    name = parse_url(f"sha1://{FOO}/{FOO}").name  # equal to FOO, not the same object
    assert name == FOO and content_url("http://h:1", FOO, name) == f"http://h:1/sha1/{FOO}"


@pytest.mark.parametrize("tail,name", [
    ("", None), ("/", None), ("/raw.mda", "raw.mda"), ("/sp%20ace%23.txt", "sp ace#.txt"),
    ("/%2e%2e", None), ("/..", None), ("/.", None), ("/a%00b", None),
])
def test_http_content_url_is_a_sha1_ref_fetched_there(tail, name):
    url = f"http://h:1/p/sha1/{SHA1.upper()}{tail}"
    assert parse_url(url) == Sha1Ref(url, SHA1, name, url)


@pytest.mark.parametrize("url", [f"http://h/sha1/{SHA1}?x=1", f"http://h/sha1/{SHA1}#f",
                                 f"http://h/sha1/{SHA1}/raw.mda?x=1"])
def test_http_content_url_with_a_query_or_fragment_is_refused(url):
    with pytest.raises(BadUrl, match="not a kbucket download URL"):
        parse_url(url)


@pytest.mark.parametrize("url", ["http://h h/3dfec2317053/download/x", "http://h\x01/3dfec2317053/download/x",
                                 "http://h\x7f:1/3dfec2317053/download/x"])
def test_a_host_with_a_space_or_a_control_character_is_refused(url):
    # (tab, CR and LF are removed by urlsplit, as by browsers: "http://h\t/" is host h)
    with pytest.raises(BadUrl, match="no valid host"):
        parse_url(url)


@pytest.mark.parametrize("value", ["http://h h:1", "http://h\x7f:1"])
def test_a_hub_url_with_a_space_or_a_control_character_is_refused(value):
    with pytest.raises(BadHubUrl):
        check_hub_url(value)


@pytest.mark.parametrize("url,is_dir", [
    ("http://h/3dfec2317053/api/readdir", True), ("http://h/3dfec2317053/api/readdir/a/b.txt", True),
    ("http://h/3dfec2317053/download", True), ("http://h/3dfec2317053/download/a/b.txt", False),
])
def test_http_directory_hint_by_route_and_trailing_slash(url, is_dir):
    ref = parse_url(url)
    assert isinstance(ref, HttpRef) and ref.is_dir_hint is is_dir


def test_kbucket_file_and_directory_hints():
    assert parse_url("kbucket://3dfec2317053/a/b.txt").is_dir_hint is False
    assert parse_url("kbucket://3dfec2317053/a/b/").is_dir_hint is True


@pytest.mark.parametrize("url", [f"sha1://{SHA1}/raw.mda", "kbucket://3dfec2317053/a",
                                 "http://h/3dfec2317053/download/a", f"http://h/sha1/{SHA1}/x"])
def test_refs_are_values(url):
    ref = parse_url(url)
    assert {ref, parse_url(url)} == {ref}  # hashable, equal by content
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.url = "other"


# -- find answers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,path,expected", [
    # a raw path (the original hub concatenates it) is encoded
    ("http://h:1/abc/download/100%.txt", "100%.txt", "http://h:1/abc/download/100%25.txt"),
    ("http://h:1/abc/download/a b", "a b", "http://h:1/abc/download/a%20b"),
    # a tail already encoded by the hub, its own way, is kept as it is
    ("http://h:1/abc/download/f%c3%bc", "fü", "http://h:1/abc/download/f%c3%bc"),
    ("http://h:1/abc/download/a+b", "a b", "http://h:1/abc/download/a+b"),
    # the marker is the node's download route, wherever the URL starts
    ("/abc/download/a b", "a b", "/abc/download/a%20b"),
    ("http://h:1/xyz/download/a b", "a b", "http://h:1/xyz/download/a b"),
])
def test_found_urls_encode_only_a_raw_path(url, path, expected):
    assert encode_found_url(url, "abc", path) == expected


# -- the hub to ask -----------------------------------------------------------------------------------

def test_configured_hub_option_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("KBUCKET_URL", "http://env:1")
    assert configured_hub("http://opt:2/") == "http://opt:2"
    assert configured_hub(None) == "http://env:1"
    assert configured_hub("") == "http://env:1"


def test_configured_hub_none_without_option_or_environment(monkeypatch):
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    assert configured_hub(None) is None
    monkeypatch.setenv("KBUCKET_URL", "")
    assert configured_hub(None) is None


@pytest.mark.parametrize("option,env,origin", [("ftp://x", "http://env:1", "--hub"), (None, "nohost", "KBUCKET_URL")])
def test_configured_hub_names_where_a_bad_url_came_from(monkeypatch, option, env, origin):
    monkeypatch.setenv("KBUCKET_URL", env)
    with pytest.raises(BadHubUrl) as info:
        configured_hub(option)
    assert str(info.value).startswith(f"{origin}=")
