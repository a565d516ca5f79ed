#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

Seeds named ok-* must be accepted and refused-* refused; the corpus test in
tests/api/fuzz_corpus.rs checks both on every `cargo test`. The constants
mirror fuzz/src/lib.rs. Run it again after changing either, then commit the
files; files the fuzzer adds later (hash names) are only checked for the
rules, not for a verdict.
"""

import base64
import hashlib
import hmac
import json
import pathlib

SECRET = b"fuzz-secret-0123456789abcdef-0123456789abcdef"
ISSUER = "https://gatehouse.fuzz"
AUDIENCE = "fuzz-api"
NOW = 2_000_000_000
KID = "hs256-" + hashlib.sha256(b"gatehouse-kid:" + SECRET).hexdigest()[:16]

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def text(value) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


def jws(header, claims, key: bytes = SECRET) -> bytes:
    signing_input = f"{b64(text(header))}.{b64(text(claims))}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}".encode()


def sign_mode(header, claims) -> bytes:
    return b"sign:" + text(header) + b"\n" + text(claims)


def header(**changes):
    value = {"alg": "HS256", "typ": "at+jwt", "kid": KID}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def claims(**changes):
    value = {
        "iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": NOW + 600, "iat": NOW - 10,
        "jti": "00000000-0000-4000-8000-000000000000", "scope": "me items",
        "client_id": "public", "ver": 0,
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def token_verify():
    good = jws(header(), claims())
    h, p, s = good.split(b".")
    seeds = {
        "ok-token": good,
        "ok-token-nbf": jws(header(), claims(nbf=NOW)),
        "ok-token-application-typ": jws(header(typ="application/at+jwt"), claims()),
        "ok-sign": sign_mode(header(), claims()),
        "ok-sign-unicode-subject": sign_mode(header(), claims(sub="jörg🦀\u0301")),
        "ok-sign-jku-x5u-jwk-ignored": sign_mode(
            header(jku="http://127.0.0.1:9/jwks", x5u="http://127.0.0.1:9/c.pem",
                   jwk={"kty": "oct", "k": "AAAA"}), claims()),
        "refused-empty": b"",
        "refused-garbage": b"not a token",
        "refused-dots": b"..",
        "refused-alg-none": b64(text(header(alg="none"))).encode() + b"." + p + b".",
        "refused-alg-NoNe-signed": jws(header(alg="NoNe"), claims()),
        "refused-hs512": jws(header(alg="HS512"), claims()),
        "refused-other-key": jws(header(), claims(), b"another-secret-another-secret-xx"),
        "refused-empty-key": jws(header(), claims(), b""),
        "refused-tampered": h + b"." + b64(text(claims(sub="mike"))).encode() + b"." + s,
        "refused-truncated": good[:-5],
        "refused-padded": good + b"=",
        "refused-four-segments": good + b".x",
        "refused-too-long": good + b"A" * 8192,
        "refused-typ-jwt": sign_mode(header(typ="JWT"), claims()),
        "refused-no-typ": sign_mode(header(typ=None), claims()),
        "refused-crit": sign_mode(header(crit=["urn:x"]), claims()),
        "refused-kid-path": sign_mode(header(kid="../../etc/passwd"), claims()),
        "refused-kid-sql": sign_mode(header(kid="' OR '1'='1"), claims()),
        "refused-no-kid": sign_mode(header(kid=None), claims()),
        "refused-expired": sign_mode(header(), claims(exp=NOW)),
        "refused-future-iat": sign_mode(header(), claims(iat=NOW + 1)),
        "refused-future-nbf": sign_mode(header(), claims(nbf=NOW + 1)),
        "refused-wrong-iss": sign_mode(header(), claims(iss="https://evil.fuzz")),
        "refused-wrong-aud": sign_mode(header(), claims(aud="other-api")),
        "refused-aud-array": sign_mode(header(), claims(aud=[AUDIENCE])),
        "refused-empty-sub": sign_mode(header(), claims(sub="")),
        "refused-missing-exp": sign_mode(header(), claims(exp=None)),
        "refused-missing-sub": sign_mode(header(), claims(sub=None)),
        "refused-missing-iss": sign_mode(header(), claims(iss=None)),
        "refused-missing-aud": sign_mode(header(), claims(aud=None)),
        "refused-missing-iat": sign_mode(header(), claims(iat=None)),
        "refused-exp-string": sign_mode(header(), claims(exp=str(NOW + 600))),
        "refused-claims-array": sign_mode(header(), b"[]"),
        "refused-claims-null": sign_mode(header(), b"null"),
        "refused-header-array": sign_mode(b"[]", claims()),
        "refused-duplicate-sub": sign_mode(header(), b'{"sub":"mike",' + text(claims())[1:]),
        "refused-duplicate-alg": sign_mode(b'{"alg":"none",' + text(header())[1:], claims()),
        # Found by the fuzzer: serde skips the bytes of an unknown claim unread.
        "refused-claims-not-utf8": sign_mode(header(), b'{"junk":"\x91",' + text(claims())[1:]),
        "refused-raw-claims-not-utf8": jws(header(), b'{"junk":"\x91",' + text(claims())[1:]),
    }
    return seeds


def token_request():
    form = "grant_type=password&username=alice&password=correct+horse"
    basic = lambda s: "Basic " + base64.b64encode(s.encode()).decode()
    seeds = {
        "ok-password": f"\n\n{form}",
        "ok-no-grant-type": "\n\nusername=alice&password=x",
        "ok-refresh": "\n\ngrant_type=refresh_token&refresh_token=abc-DEF_123",
        "ok-scope-and-client": f"\n\n{form}&scope=me+items&client_id=web",
        "ok-escapes": "\n\nusername=j%C3%B6rg+x&password=a%26b%3Dc&scope=",
        "ok-swagger-basic": f"Basic Og==\n\n{form}",
        "ok-basic-client": f"{basic('my-cli:')}\n\n{form}",
        "ok-basic-and-form-agree": f"{basic('web:')}\n\n{form}&client_id=web",
        "ok-charset": f"\napplication/x-www-form-urlencoded; charset=UTF-8\n{form}",
        "refused-json": '\napplication/json\n{"username":"alice","password":"x"}',
        "refused-latin1": f"\napplication/x-www-form-urlencoded; charset=ISO-8859-1\n{form}",
        "refused-json-as-form": '\n\n{"username":"alice","password":"x"}',
        "refused-empty": "\n\n",
        "refused-repeated": f"\n\n{form}&password=other",
        "refused-repeated-escaped": f"\n\n{form}&%70assword=other",
        "refused-bad-utf8": "\n\ngrant_type=password&username=alice%FF&password=x",
        "refused-bad-escape": "\n\ngrant_type=password&username=alice%G1&password=x",
        "refused-too-many": "\n\n" + "&".join(f"p{i}=1" for i in range(33)),
        "refused-unsupported-grant": "\n\ngrant_type=client_credentials",
        "refused-grant-case": "\n\ngrant_type=PASSWORD&username=a&password=b",
        "refused-client-secret": f"\n\n{form}&client_secret=s3cret",
        "refused-basic-secret": f"{basic('web:s3cret')}\n\n{form}",
        "refused-bearer": f"Bearer abc.def.ghi\n\n{form}",
        "refused-basic-junk": f"Basic !!!\n\n{form}",
        "refused-two-authorization": f"Basic Og==\rBasic Og==\n\n{form}",
        "refused-client-mismatch": f"{basic('web:')}\n\n{form}&client_id=cli",
        "refused-client-id-control": f"\n\n{form}&client_id=a%00b",
    }
    return {name: value.encode() for name, value in seeds.items()}


def main():
    for target, seeds in [("token_verify", token_verify()), ("token_request", token_request())]:
        directory = ROOT / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("ok-*"):
            old.unlink()
        for old in directory.glob("refused-*"):
            old.unlink()
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{target}: {len(seeds)} seeds in {directory}")


if __name__ == "__main__":
    main()
