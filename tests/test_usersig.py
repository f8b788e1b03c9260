"""UserSig: the published algorithm, Tencent's official signer as the oracle, and a verifier
that answers the server's error code for anything it is handed, without raising."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tencent_desk.api import usersig
from tencent_desk.core.clock import VirtualClock
from TLSSigAPIv2 import TLSSigAPIv2

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

# The vector of the reference (computed with TLSSigAPIv2's algorithm).
VECTOR_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
VECTOR_SIG = "SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc="
SDKAPPID, ADMIN, KEY = 1400000000, "xiaojun", VECTOR_KEY
NOW = 1_700_000_000
CODES = {usersig.OK, usersig.EXPIRED, usersig.EMPTY, usersig.MALFORMED, usersig.BAD_SIGNATURE,
         usersig.WRONG_IDENTIFIER, usersig.WRONG_SDKAPPID}


def _pack(doc: object) -> str:
    """Any JSON value packed the way a UserSig is."""
    raw = base64.b64encode(zlib.compress(json.dumps(doc).encode())).decode()
    return raw.translate(str.maketrans("+/=", "*-_"))


def _verify(sig: str | None, *, now: float = NOW + 10, sdkappid: int = SDKAPPID,
            identifier: str = ADMIN, key: str = KEY) -> usersig.Verdict:
    return usersig.verify(sig, sdkappid, identifier, key, now=now)


def test_fixed_vector() -> None:
    sig = usersig.generate(SDKAPPID, ADMIN, KEY, expire=86400, now=NOW)
    doc = usersig.decode(sig)
    assert doc is not None and doc["TLS.sig"] == VECTOR_SIG
    assert doc["TLS.ver"] == "2.0" and doc["TLS.time"] == NOW and doc["TLS.expire"] == 86400
    assert not set(sig) & set("+/=")


def test_round_trip_and_expiry_boundary() -> None:
    sig = usersig.generate(SDKAPPID, ADMIN, KEY, expire=600, now=NOW)
    verdict = _verify(sig)
    assert verdict.ok and verdict.expires_at == NOW + 600
    assert _verify(sig, now=NOW + 600).ok  # "now > time + expire" is expired
    assert _verify(sig, now=NOW + 601).code == usersig.EXPIRED


def test_userbuf_round_trip() -> None:
    sig = usersig.generate(SDKAPPID, ADMIN, KEY, now=NOW, userbuf=b"\x00room-7")
    assert usersig.decode(sig)["TLS.userbuf"] == base64.b64encode(b"\x00room-7").decode()
    assert _verify(sig).ok


def test_official_signer_sigs_verify() -> None:
    signer = TLSSigAPIv2(SDKAPPID, KEY)
    assert usersig.verify(signer.gen_sig(ADMIN), SDKAPPID, ADMIN, KEY).ok
    assert usersig.verify(signer.gen_sig_with_userbuf(ADMIN, 3600, b"buf"),
                          SDKAPPID, ADMIN, KEY).ok
    # And ours carry the same signature as the official signer's for the same fields.
    official = usersig.decode(signer.gen_sig(ADMIN, 86400))
    ours = usersig.decode(usersig.generate(SDKAPPID, ADMIN, KEY, expire=86400,
                                           now=official["TLS.time"]))
    assert ours["TLS.sig"] == official["TLS.sig"]


@pytest.mark.parametrize(("sig", "kwargs", "code"), [
    (None, {}, usersig.EMPTY),
    ("", {}, usersig.EMPTY),
    ("garbage!", {}, usersig.MALFORMED),
    ("ünïcode", {}, usersig.MALFORMED),
    (_pack([1, 2]), {}, usersig.MALFORMED),
    (_pack("TLS"), {}, usersig.MALFORMED),
    (_pack(None), {}, usersig.MALFORMED),
    (_pack({"TLS.sdkappid": SDKAPPID}), {}, usersig.MALFORMED),
    (_pack({"TLS.sdkappid": SDKAPPID, "TLS.identifier": ADMIN, "TLS.time": "soon",
            "TLS.expire": 1, "TLS.sig": "x"}), {}, usersig.MALFORMED),
    (_pack({"TLS.sdkappid": SDKAPPID, "TLS.identifier": 7, "TLS.time": NOW,
            "TLS.expire": 1, "TLS.sig": "x"}), {}, usersig.MALFORMED),
    (_pack({"TLS.sdkappid": SDKAPPID, "TLS.identifier": ADMIN, "TLS.time": NOW,
            "TLS.expire": 600, "TLS.sig": "x", "TLS.userbuf": 5}), {}, usersig.MALFORMED),
    (_pack({"TLS.sdkappid": SDKAPPID, "TLS.identifier": ADMIN, "TLS.time": NOW,
            "TLS.expire": 600, "TLS.sig": "forged"}), {}, usersig.BAD_SIGNATURE),
    ("sig", {"key": "another key"}, usersig.BAD_SIGNATURE),
    ("sig", {"identifier": "someone"}, usersig.WRONG_IDENTIFIER),
    ("sig", {"sdkappid": 1400000001}, usersig.WRONG_SDKAPPID),
    ("sig", {"now": NOW + 86401}, usersig.EXPIRED),
    ("half", {}, usersig.MALFORMED),
])
def test_bad_sigs_get_their_code(sig: str | None, kwargs: dict, code: int) -> None:
    good = usersig.generate(SDKAPPID, ADMIN, KEY, expire=86400, now=NOW)
    sig = {"sig": good, "half": good[: len(good) // 2]}.get(sig, sig) if sig else sig
    verdict = _verify(sig, **kwargs)
    assert verdict.code == code and not verdict.ok and verdict.reason


@given(st.text())
def test_any_text_is_refused_without_raising(text: str) -> None:
    assert _verify(text).code in CODES - {usersig.OK}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=True, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_field = st.sampled_from(["TLS.sdkappid", "TLS.identifier", "TLS.time", "TLS.expire",
                          "TLS.sig", "TLS.userbuf", "TLS.ver"])


@given(_json)
def test_any_json_document_is_refused_without_raising(doc: object) -> None:
    assert _verify(_pack(doc)).code in CODES - {usersig.OK}


@given(st.dictionaries(_field, _json, max_size=7))
def test_any_sig_shaped_document_is_refused_without_raising(doc: dict) -> None:
    assert _verify(_pack(doc)).code in CODES - {usersig.OK}


def test_an_infinite_number_is_malformed_not_a_crash() -> None:
    doc = {"TLS.sdkappid": float("inf"), "TLS.identifier": ADMIN, "TLS.time": NOW,
           "TLS.expire": 600, "TLS.sig": "x"}
    assert _verify(_pack(doc)).code == usersig.MALFORMED


def test_provider_caches_then_renews_on_its_wall_clock() -> None:
    wall = VirtualClock(NOW)
    provider = usersig.UserSigProvider(SDKAPPID, ADMIN, secret_key=KEY, expire=1000,
                                       wall=wall.time)
    first = provider.current()
    assert provider.current() == first
    wall.advance(749)  # renewal starts when a quarter of the lifetime is left
    assert provider.current() == first
    wall.advance(1)
    second = provider.current()
    assert second != first
    assert usersig.verify(second, SDKAPPID, ADMIN, KEY, now=wall.time() + 999).ok
    wall.advance(1)
    assert provider.renew() and provider.current() not in (first, second)
    assert provider.can_renew


def test_provider_with_a_ready_made_sig() -> None:
    provider = usersig.UserSigProvider(SDKAPPID, ADMIN, usersig="ready-made")
    assert provider.current() == "ready-made"
    assert not provider.can_renew and not provider.renew()
    with pytest.raises(ValueError):
        usersig.UserSigProvider(SDKAPPID, ADMIN)


def test_repr_hides_the_key_and_the_sig() -> None:
    provider = usersig.UserSigProvider(SDKAPPID, ADMIN, secret_key=KEY,
                                       wall=VirtualClock(NOW).time)
    sig = provider.current()
    assert KEY not in repr(provider) and sig not in repr(provider)
    assert set(provider.secrets()) == {KEY, sig}
    fixed = usersig.UserSigProvider(SDKAPPID, ADMIN, usersig="ready-made-sig")
    assert "ready-made-sig" not in repr(fixed)
