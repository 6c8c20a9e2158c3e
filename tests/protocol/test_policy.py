"""One policy for both drivers of a ParentLink (share/link.py and hub/parent.py): reconnect delays,
the headers replayed against the node's own server, the error text sent to the hub."""
from __future__ import annotations

import inspect
import itertools

import pytest

from kbtools.hub import parent as hub_driver
from kbtools.hub.server import HubSettings
from kbtools.protocol import policy
from kbtools.share import link as share_driver

DRIVERS = [share_driver, hub_driver]


def test_delays_double_up_to_the_cap_within_the_jitter():
    nominal = [1, 2, 4, 8, 10, 10, 10]
    for low_high in (0.8, 1.2):
        got = list(itertools.islice(policy.retry_delays(uniform=lambda a, b: low_high), len(nominal)))
        assert got == [round(n * low_high, 2) for n in nominal]
    many = list(itertools.islice(policy.retry_delays(0.5, 4.0), 200))
    assert all(0.4 <= d <= 4.8 for d in many) and len(set(many)) > 10  # jittered, not fixed


def test_each_delay_is_drawn_within_the_jitter_and_rounded_to_the_hundredth():
    asked: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        asked.append((a, b))
        return 1.016

    got = list(itertools.islice(policy.retry_delays(uniform=uniform), 5))
    assert got == [1.02, 2.03, 4.06, 8.13, 10.16]
    assert asked == [(0.8, 1.2)] * 5


def test_only_an_authorization_bearer_is_a_grant_token():
    for headers in ({"Accept": "Bearer kbt1x"}, {"X-Other": "Bearer kbt1x"},
                    {"Authorization": "Digest kbt1x"}, {"Authorization": "bearerkbt1x"}):
        assert policy.replay_headers(headers) == {k: v for k, v in headers.items()
                                                  if k != "Authorization"}
    for other in ("Range", "X-Other", "Accept"):  # kept beside the token, whatever their name
        got = policy.replay_headers({other: "v", "Authorization": "bEaReR kbt1x"})
        assert got == {other: "v", "X-Kbucket-Token": "kbt1x"}


def test_headers_that_are_not_text_are_left_out_and_the_rest_kept():
    headers = {"X-Number": 5, 7: "seven", "Range": "bytes=0-1", "X-List": ["a"], "X-Other": "kept"}
    assert policy.replay_headers(headers) == {"Range": "bytes=0-1", "X-Other": "kept"}


def test_replayed_headers_carry_no_credentials_but_a_grant_token():
    headers = {"Cookie": "s=1", "Authorization": "Basic eDp5", "Proxy-Authorization": "x",
               "Host": "hub", "Content-Length": "3", "Connection": "close", "TE": "trailers",
               "Range": "bytes=0-1", "X-Other": "kept", "X-Number": 5}
    assert policy.replay_headers(headers) == {"Range": "bytes=0-1", "X-Other": "kept"}
    assert policy.replay_headers({"authorization": "Bearer kbt1abc "}) == {"X-Kbucket-Token": "kbt1abc"}
    both = {"authorization": "Bearer other", "x-kbucket-token": "kbt1mine"}
    assert policy.replay_headers(both) == {"x-kbucket-token": "kbt1mine"}  # the share reads this first


def test_the_error_text_is_the_type_only():
    exc = FileNotFoundError(2, "No such file", "/home/me/secret/path")
    assert policy.request_error(exc) == "Error in request: FileNotFoundError"
    assert "/home/me" in policy.describe_failure(exc)  # the local log may say it; the hub never sees it


@pytest.mark.parametrize("driver", DRIVERS, ids=lambda m: m.__name__)
def test_both_drivers_use_the_one_policy(driver):
    assert driver.retry_delays is policy.retry_delays
    assert driver.replay_headers is policy.replay_headers
    assert driver.request_error is policy.request_error
    source = inspect.getsource(driver)
    # no policy of their own next to it: no jitter, header list or error text written again
    for own in ("random.", '"cookie"', '"authorization"', "Error in request: {", "__name__}"):
        assert own not in source, own


def test_the_hub_and_the_share_start_from_the_same_delays():
    settings = HubSettings.__dataclass_fields__
    assert settings["first_retry"].default == policy.FIRST_RETRY
    assert settings["max_retry"].default == policy.MAX_RETRY
    assert inspect.signature(share_driver.HubLink.__init__).parameters["max_retry"].default == policy.MAX_RETRY
