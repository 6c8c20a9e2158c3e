"""URL forms the client accepts, and the API URLs it builds."""
from __future__ import annotations

import pytest

from kbtools.client.errors import BadHubUrl, BadUrl
from kbtools.client.urls import (
    HttpRef,
    KbucketRef,
    Sha1Ref,
    check_hub_url,
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


# -- hostile URLs (issue 18) ------------------------------------------------------------------------

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
