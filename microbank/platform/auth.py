"""Bearer tokens: EdDSA-signed JWTs. Only the users role holds the private key; every role verifies."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from microbank.platform.errors import Forbidden, Unauthenticated
from microbank.platform.logging import bind
from microbank.platform.settings import ConfigError

ISSUER = "microbank"
AUDIENCE = "microbank"
ALGORITHM = "EdDSA"
SERVICE_TOKEN_HEADER = "x-service-token"
# Where a role asks a peer whether it holds the same service credential (never routed by the ingress).
CREDENTIAL_CHECK_PATH = "/internal/credential"

Role = Literal["customer", "admin"]


@dataclass(frozen=True)
class Caller:
    """Who is making the request, as the token says."""

    user_id: int
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# A request that passed BearerAuthMiddleware: request.user is the Caller, request.auth the token.
AuthedRequest = Request[Caller, str, State]


def generate_keypair() -> tuple[str, str]:
    """A fresh Ed25519 pair as PEM strings (private, public): for `microbank dev` and tests."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private_pem, public_pem_of(private_pem)


def public_pem_of(private_pem: str) -> str:
    return (
        _load_private(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _load_private(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"JWT_PRIVATE_KEY is not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("JWT_PRIVATE_KEY must be an Ed25519 key")
    return key


def _load_public(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"JWT_PUBLIC_KEY is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("JWT_PUBLIC_KEY must be an Ed25519 key")
    return key


class TokenIssuer:
    def __init__(self, private_pem: str, *, ttl_seconds: int) -> None:
        self._key = _load_private(private_pem)
        self.ttl_seconds = ttl_seconds

    def issue(self, caller: Caller) -> str:
        now = int(time.time())
        claims = {
            "sub": str(caller.user_id),
            "role": caller.role,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.ttl_seconds,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens. A client sends the same token with every request for its whole
    lifetime, so a verified token is remembered until it expires: checking its signature again
    would cost ~250 µs of CPU a request for nothing."""

    CACHED_TOKENS = 4096

    def __init__(self, public_pem: str) -> None:
        self._key = _load_public(public_pem)
        self._verified: OrderedDict[str, tuple[Caller, int]] = OrderedDict()

    def verify(self, token: str) -> Caller:
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] > time.time():
            return remembered[0]
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid", code="invalid_token") from None
        caller = _caller_from(claims)
        self._remember(token, caller, int(claims["exp"]))
        return caller

    def _remember(self, token: str, caller: Caller, expires: int) -> None:
        self._verified[token] = (caller, expires)
        if len(self._verified) > self.CACHED_TOKENS:
            self._verified.popitem(last=False)


def _caller_from(claims: dict[str, Any]) -> Caller:
    role, sub = claims.get("role"), claims.get("sub")
    if role not in ("customer", "admin") or not isinstance(sub, str) or not sub.isdigit():
        raise Unauthenticated("the token is not valid", code="invalid_token")
    return Caller(user_id=int(sub), role=role)


# Handler opt that lets a route through without a bearer token.
PUBLIC = {"exclude_from_auth": True}


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route needs a valid bearer token unless its handler opts out with exclude_from_auth."""

    def __init__(self, app: Any, verifier: TokenVerifier, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.verifier = verifier

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("an 'Authorization: Bearer <token>' header is required")
        caller = self.verifier.verify(token.strip())
        bind(user_id=caller.user_id)
        return AuthenticationResult(user=caller, auth=token)


def service_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Route guard for internal endpoints: the caller presents the shared service credential."""
    expected = connection.app.state.settings.service_token
    presented = connection.headers.get(SERVICE_TOKEN_HEADER, "")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Forbidden("this endpoint is for microbank services only")


def admin_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Route guard: the caller must hold the admin role."""
    if not connection.user.is_admin:
        raise Forbidden("this needs the admin role")
