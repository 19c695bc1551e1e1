"""Verifying the vendors' own request signatures, so their unmodified SDKs can call the gateway.

The gateway's auth layer (`lakejob.gateway.auth`) turns each HTTP request into a `SignedRequest`
exactly as it arrived (raw percent-encoded path, raw query string, headers, body bytes) and calls
`verify_dli` (Huawei Cloud's "SDK-HMAC-SHA256" AK/SK signing, as huaweicloudsdkcore signs every
DLI call) or `verify_batchcompute` (Alibaba BatchCompute's "acs AK:signature" HMAC-SHA1). Each
answers the access key id whose secret made the signature, or raises `SignatureError`. Secrets
come from the caller's `secret_of` (the gateway reads them from a Kubernetes Secret), and the
clock from its `now`: this module is pure, no I/O, so every rule below is unit-tested against
requests that the real SDKs signed (tests/unit/test_gateway_signing.py).

The canonical forms are rebuilt from the request as received, never taken from the client, and
every check that can fail says what failed in one line, without a secret in it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote


@dataclass(frozen=True)
class SignedRequest:
    """One HTTP request as the gateway received it, before any decoding of its own."""

    method: str                  # "POST"
    path: str                    # raw, percent-encoded: "/v2.0/abc/batches"
    query: str                   # raw, without "?"; "" if none
    headers: Mapping[str, str]   # as received; looked up case-insensitively
    body: bytes


class SignatureError(Exception):
    """The request is not signed by a known key: the one-line message says why (no secret in it).

    `string_to_sign`, when the signature itself was compared, is what the gateway signed: not
    secret, and what a client's debug log shows, so an operator can see where the two differ
    (a proxy that rewrote the path, a header dropped on the way).
    """

    def __init__(self, message: str, string_to_sign: str | None = None) -> None:
        super().__init__(message)
        self.string_to_sign = string_to_sign


SecretOf = Callable[[str], str | None]
"""secret_of(ak): the secret key of ak, None for a key the gateway does not know."""

# --- Huawei Cloud (DLI): huaweicloudsdkcore's AK/SK signing --------------------------------------

DLI_ALGORITHM = "SDK-HMAC-SHA256"
# Opt-in in the SDK (BasicCredentials.with_derived_predicate): the signing key is derived per day,
# region and service from the AK/SK. Accepted too, so a client that turns it on still gets in.
DLI_DERIVED_ALGORITHM = "V11-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_SDK_DATE = "X-Sdk-Date"
_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
# The SDK sends this instead of the body's hash for bodies that are not JSON or BSON (multipart
# uploads, streams): such a body is then not covered by the signature at all.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def verify_dli(req: SignedRequest, secret_of: SecretOf, now: datetime,
               max_skew: timedelta = timedelta(minutes=15), *,
               allow_unsigned_payload: bool = False) -> str:
    """Returns the access key id whose secret signed req; raises SignatureError.

    The scheme (huaweicloudsdkcore.signer.Signer, the default for BasicCredentials):
    Authorization: `SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2;…>, Signature=<hex>`, the
    signature HMAC-SHA256(SK, "SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n" + hex(SHA256(canonical request))).
    A body sent with `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` is not signed: refused unless
    `allow_unsigned_payload` (no DLI call the gateway serves needs one).
    """
    headers = _lower_keys(req.headers)
    authorization = _required(headers, "Authorization")
    algorithm, _, credentials = authorization.strip().partition(" ")
    if algorithm not in (DLI_ALGORITHM, DLI_DERIVED_ALGORITHM):
        raise SignatureError(f"unsupported signing algorithm {algorithm[:40]!r}: "
                             f"only {DLI_ALGORITHM} and {DLI_DERIVED_ALGORITHM} are accepted")
    fields = _auth_fields(credentials)
    signed_headers_field = _field(fields, "SignedHeaders")
    signature = _field(fields, "Signature")
    if algorithm == DLI_ALGORITHM:
        ak, scope = _field(fields, "Access"), ""
    else:
        # Credential=<AK>/<yyyymmdd>/<region>/<service>: the scope is part of what is signed.
        ak, _, scope = _field(fields, "Credential").partition("/")
        if scope.count("/") != 2:
            raise SignatureError("malformed Credential in Authorization: expected AK/date/region/service")

    raw_date = _required(headers, _SDK_DATE)
    try:
        signed_at = datetime.strptime(raw_date, SDK_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise SignatureError(f"malformed {_SDK_DATE} {raw_date[:40]!r}: expected {SDK_DATE_FORMAT}") from None
    _check_window(_SDK_DATE, signed_at, now, max_skew)
    if scope and scope.split("/")[0] != signed_at.strftime("%Y%m%d"):
        raise SignatureError(f"Credential scope date {scope.split('/')[0]!r} is not the day of {_SDK_DATE}")

    secret = _secret(secret_of, ak)
    signed_headers = signed_headers_field.split(";")
    canonical_headers = []
    for name in signed_headers:
        if name != name.lower() or not name:
            raise SignatureError(f"malformed SignedHeaders {signed_headers_field[:80]!r}: "
                                 "names must be non-empty and lower-case")
        value = headers.get(name)
        if value is None:
            raise SignatureError(f"signed header {_show(name)} is missing from the request")
        canonical_headers.append(f"{name}:{value.strip()}\n")
    canonical_request = "\n".join([
        req.method.upper(), _dli_canonical_uri(req.path), _dli_canonical_query(req.query),
        "".join(canonical_headers), signed_headers_field,
        _dli_payload_hash(req.body, headers, allow_unsigned_payload)])
    hashed = hashlib.sha256(_utf8(canonical_request)).hexdigest()
    # The SDK signs strftime(strptime(X-Sdk-Date)), not the header as sent: the same string but
    # for dates written loosely ("2026121T…"), which strptime accepts.
    date = signed_at.strftime(SDK_DATE_FORMAT)
    if algorithm == DLI_ALGORITHM:
        string_to_sign = f"{algorithm}\n{date}\n{hashed}"
        key = _utf8(secret)
    else:
        string_to_sign = f"{algorithm}\n{date}\n{scope}\n{hashed}"
        key = _derived_key(ak, secret, scope)
    expected = hmac.new(key, _utf8(string_to_sign), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(_utf8(expected), _utf8(signature.lower())):
        raise SignatureError(f"signature mismatch for access key {_show(ak)}", string_to_sign)
    return ak


def _dli_canonical_uri(raw_path: str) -> str:
    """Each segment decoded then re-encoded strictly (RFC 3986 unreserved only), ending in "/".

    The SDK quotes path parameters with safe="" and then canonicalises unquote(path).split("/"),
    so an encoded "/" inside a parameter counts as a separator here too: done the same way, or
    such a request could never verify. The trailing "/" is always added (the canonical URI of
    "/v2.0/p/batches" is "/v2.0/p/batches/"), while the request itself goes without it.
    """
    uri = "/".join(quote(segment, safe="~") for segment in unquote(raw_path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _dli_canonical_query(raw_query: str) -> str:
    """Pairs decoded, sorted by (name, value), re-encoded strictly, joined with "&".

    Decoded with unquote, not unquote_plus: the SDK encodes a space as %20 and a "+" as %2B, so a
    bare "+" received is a literal "+". A name without "=" counts as an empty value.
    """
    pairs = []
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return "&".join(f"{quote(n, safe='~')}={quote(v, safe='~')}" for n, v in sorted(pairs))


def _dli_payload_hash(body: bytes, headers: Mapping[str, str], allow_unsigned: bool) -> str:
    if not body:
        return _EMPTY_SHA256  # the SDK ignores X-Sdk-Content-Sha256 for an empty body
    declared = headers.get(_CONTENT_SHA256.lower())
    actual = hashlib.sha256(body).hexdigest()
    if declared is None:
        return actual
    if declared.strip() == UNSIGNED_PAYLOAD:
        if not allow_unsigned:
            raise SignatureError(f"{_CONTENT_SHA256}: {UNSIGNED_PAYLOAD} refused: the body must be signed")
        return UNSIGNED_PAYLOAD
    # Signed as declared: it must then be the hash of the body that arrived.
    if not hmac.compare_digest(_utf8(declared.strip().lower()), _utf8(actual)):
        raise SignatureError(f"{_CONTENT_SHA256} does not match the body received")
    return declared.strip()


def _derived_key(ak: str, sk: str, scope: str) -> bytes:
    """V11's signing key: HKDF-SHA256 (RFC 5869, one block) with salt AK, input SK, info the scope.

    The SDK signs with the hex string of that key, not its bytes.
    """
    prk = hmac.new(_utf8(ak), _utf8(sk), hashlib.sha256).digest()
    okm = hmac.new(prk, _utf8(scope) + b"\x01", hashlib.sha256).digest()
    return okm.hex().encode("ascii")


# --- Alibaba BatchCompute: "acs" HMAC-SHA1 -------------------------------------------------------

BATCHCOMPUTE_PREFIX = "acs "  # how its Authorization header starts: `acs AK:signature`
# How the Authorization header of a signed request starts, per scheme this module verifies.
SIGNED_PREFIXES = (DLI_ALGORITHM + " ", DLI_DERIVED_ALGORITHM + " ", BATCHCOMPUTE_PREFIX)
BATCHCOMPUTE_SIGNATURE_METHOD = "HMAC-SHA1"
BATCHCOMPUTE_SIGNATURE_VERSION = "1.0"
_ACS_PREFIX = "x-acs-"


def verify_batchcompute(req: SignedRequest, secret_of: SecretOf, now: datetime,
                        max_skew: timedelta = timedelta(minutes=15)) -> str:
    """Returns the access key id whose secret signed req; raises SignatureError.

    The scheme (batchcompute 2.1.7, batchcompute.core.api.Api.get_auth): Authorization:
    `acs <AK>:<base64(HMAC-SHA1(secret, string to sign))>`, the string to sign
    "<METHOD>\\n<Accept>\\n<Content-MD5>\\n<Content-Type>\\n<Date>\\n" + one "name:value\\n" per
    x-acs-* header (names lower-cased, sorted) + the path and "?query" exactly as sent.

    The SDK's signature does not cover the body: it sends the body's MD5 as `contentMd5`, a
    header its signer never reads (it looks for Content-MD5). A Content-MD5, when a client sends
    one, is signed and checked against the body; the SDK's contentMd5 is checked too, which
    catches a body changed on the way but proves nothing against someone who also fixes that
    header: only TLS protects a BatchCompute body.
    """
    headers = _lower_keys(req.headers)
    authorization = _required(headers, "Authorization")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme != "acs":
        raise SignatureError(f"unsupported signature scheme {scheme[:40]!r}: only 'acs' is accepted")
    ak, colon, signature = credentials.strip().rpartition(":")
    if not colon or not ak or not signature:
        raise SignatureError("malformed Authorization: expected 'acs <AccessKeyId>:<Signature>'")
    for name, supported in (("x-acs-signature-method", BATCHCOMPUTE_SIGNATURE_METHOD),
                            ("x-acs-signature-version", BATCHCOMPUTE_SIGNATURE_VERSION)):
        value = headers.get(name)
        if value is not None and value.strip() != supported:
            raise SignatureError(f"unsupported {name} {value.strip()[:40]!r}: only {supported} is accepted")
    declared_ak = headers.get("x-acs-access-key-id")
    if declared_ak is not None and declared_ak.strip() != ak:
        raise SignatureError(f"x-acs-access-key-id does not match the access key {_show(ak)} of Authorization")

    raw_date = _required(headers, "Date")
    try:
        signed_at = parsedate_to_datetime(raw_date)
    except (TypeError, ValueError):
        raise SignatureError(f"malformed Date {raw_date[:40]!r}: expected RFC 1123") from None
    _check_window("Date", signed_at, now, max_skew)

    content_md5 = headers.get("content-md5", "").strip()
    if content_md5 and not _md5_matches(content_md5, req.body):
        raise SignatureError("Content-MD5 does not match the body received")
    sdk_md5 = headers.get("contentmd5")
    if sdk_md5 is not None and not _md5_matches(sdk_md5.strip(), req.body):
        raise SignatureError("contentMd5 does not match the body received")

    secret = _secret(secret_of, ak)
    acs_headers = "".join(f"{name}:{value.strip()}\n" for name, value in sorted(headers.items())
                          if name.startswith(_ACS_PREFIX))
    resource = req.path + ("?" + req.query if req.query else "")
    string_to_sign = "\n".join([
        req.method.upper(), headers.get("accept", "").strip(), content_md5,
        headers.get("content-type", "").strip(), raw_date, acs_headers + resource])
    expected = base64.b64encode(hmac.new(_utf8(secret), _utf8(string_to_sign), hashlib.sha1).digest())
    if not hmac.compare_digest(expected, _utf8(signature.strip())):
        raise SignatureError(f"signature mismatch for access key {_show(ak)}", string_to_sign)
    return ak


def _md5_matches(declared: str, body: bytes) -> bool:
    """RFC 1864's base64 form, or the hex form the SDK's contentMd5 uses."""
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    return (hmac.compare_digest(_utf8(declared), base64.b64encode(digest))
            or hmac.compare_digest(_utf8(declared.lower()), _utf8(digest.hex())))


# --- shared --------------------------------------------------------------------------------------

def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.strip().lower(): value for name, value in headers.items()}


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise SignatureError(f"missing header {name}")
    return value.strip()


def _auth_fields(credentials: str) -> dict[str, str]:
    fields = {}
    for item in credentials.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            fields[name] = value.strip()
    return fields


def _field(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise SignatureError(f"malformed Authorization: no {name}=")
    return value


def _secret(secret_of: SecretOf, ak: str) -> str:
    secret = secret_of(ak)
    if not secret:
        raise SignatureError(f"unknown access key {_show(ak)}")
    return secret


def _check_window(header: str, signed_at: datetime, now: datetime, max_skew: timedelta) -> None:
    """A signed request is good for max_skew either side of now: the replay window."""
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=timezone.utc)  # RFC 1123's "-0000": UTC all the same
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if abs(now - signed_at) > max_skew:
        raise SignatureError(f"request date {header} {signed_at:%Y-%m-%dT%H:%M:%SZ} is outside the "
                             f"allowed window of {max_skew} around {now.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}")


def _show(untrusted: str) -> str:
    """A client's string fit for a one-line message: printable, at most 64 characters."""
    return "".join(c if c.isprintable() else "?" for c in untrusted[:64])


def _utf8(text: str) -> bytes:
    # surrogateescape: a server that decoded header bytes that were not UTF-8 that way (aiohttp
    # does) gets back the bytes the client signed.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise SignatureError("request text that is not valid UTF-8") from None
