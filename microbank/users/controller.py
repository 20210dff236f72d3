"""HTTP for users: /api/users and /api/auth/token."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from microbank.platform.auth import PUBLIC, AuthedRequest, TokenIssuer, admin_only
from microbank.platform.db import Database
from microbank.platform.domain import database_dependency
from microbank.platform.openapi import errors
from microbank.platform.pagination import DEFAULT_LIMIT, PAGE_HEADERS, Cursor, Limit, page
from microbank.users import service
from microbank.users.models import User
from microbank.users.schemas import AccessToken, Credentials, SignUp, UserOut


def user_out(user: User) -> UserOut:
    return UserOut(id=user.id, name=user.name, email=user.email, role=user.role, created_at=user.created_at)


class UserController(Controller):
    path = "/api/users"
    tags = ["users"]
    dependencies = {"db": database_dependency("users")}

    @post("/", sync_to_thread=True, opt=PUBLIC, summary="Sign up")
    def sign_up(self, data: JSONBody[SignUp], db: NamedDependency[Database]) -> UserOut:
        return user_out(service.register_user(db=db, name=data.name, email=data.email, password=data.password))

    @get("/me", sync_to_thread=True, responses=errors(404), summary="The caller's profile")
    def me(self, request: AuthedRequest, db: NamedDependency[Database]) -> UserOut:
        return user_out(service.get_user(db=db, user_id=request.user.user_id))

    @get(
        "/",
        sync_to_thread=True,
        guards=[admin_only],
        response_headers=PAGE_HEADERS,
        summary="All users (admin)",
    )
    def list_users(
        self,
        request: AuthedRequest,
        db: NamedDependency[Database],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Response[list[UserOut]]:
        users = service.list_users(db=db, after=cursor, limit=limit)
        return page(request, [user_out(u) for u in users], limit=limit)


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]
    dependencies = {"db": database_dependency("users")}

    @post("/token", sync_to_thread=True, opt=PUBLIC, status_code=200, responses=errors(401, 429), summary="Log in")
    def issue_token(
        self, request: Request, data: JSONBody[Credentials], db: NamedDependency[Database], state: State
    ) -> AccessToken:
        issuer: TokenIssuer = state.token_issuer
        # The address uvicorn reports: the peer's, or X-Forwarded-For's from a trusted proxy.
        client = request.client.host if request.client else "unknown"
        caller = service.authenticate(db=db, email=data.email, password=data.password, client=client)
        return AccessToken(access_token=issuer.issue(caller), token_type="bearer", expires_in=issuer.ttl_seconds)
