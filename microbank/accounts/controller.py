"""HTTP for accounts: /api/accounts."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import Row

from microbank.accounts import service
from microbank.accounts.schemas import AccountOut, OpenAccount, PostingOut
from microbank.contracts import postings
from microbank.contracts.deposits import Deposits, OpeningDeposit
from microbank.contracts.postings import PostingsOutcome, PostingsRequest
from microbank.platform.admission import EXEMPT
from microbank.platform.auth import PUBLIC, AuthedRequest, service_only
from microbank.platform.db import Database
from microbank.platform.domain import database_dependency, port_dependency
from microbank.platform.money import format_minor
from microbank.platform.pagination import DEFAULT_LIMIT, PAGE_HEADERS, Cursor, EntityId, Limit, page


def account_out(account: Row, opening_deposit: OpeningDeposit | None = None) -> AccountOut:
    return AccountOut(
        id=account.id,
        user_id=account.user_id,
        account_type=account.account_type,
        currency=account.currency,
        balance=format_minor(account.balance_minor),
        created_at=account.created_at,
        opening_deposit=opening_deposit,
    )


class AccountController(Controller):
    path = "/api/accounts"
    tags = ["accounts"]
    dependencies = {"db": database_dependency("accounts"), "deposits": port_dependency("deposits")}

    @post("/", sync_to_thread=True, summary="Open an account for the caller, optionally funded by an initial deposit")
    def open_account(
        self,
        request: AuthedRequest,
        data: JSONBody[OpenAccount],
        db: NamedDependency[Database],
        deposits: NamedDependency[Deposits],
    ) -> AccountOut:
        account, opening = service.open_account(
            db=db,
            deposits=deposits,
            caller=request.user,
            caller_token=request.auth,
            account_type=data.account_type,
            currency=data.currency,
            initial_deposit=data.initial_deposit,
        )
        return account_out(account, opening_deposit=opening)

    @get(
        "/",
        sync_to_thread=True,
        response_headers=PAGE_HEADERS,
        summary="The caller's accounts with balances (an admin sees all)",
    )
    def list_accounts(
        self,
        request: AuthedRequest,
        db: NamedDependency[Database],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Response[list[AccountOut]]:
        accounts = service.list_accounts(db=db, caller=request.user, after=cursor, limit=limit)
        return page(request, [account_out(a) for a in accounts], limit=limit)

    @get("/{account_id:int}", sync_to_thread=True, summary="One of the caller's accounts")
    def get_account(
        self, request: AuthedRequest, account_id: FromPath[EntityId], db: NamedDependency[Database]
    ) -> AccountOut:
        return account_out(service.get_account(db=db, caller=request.user, account_id=account_id))

    @get(
        "/{account_id:int}/postings",
        sync_to_thread=True,
        response_headers=PAGE_HEADERS,
        summary="The account statement: every balance change, newest first",
    )
    def list_postings(
        self,
        request: AuthedRequest,
        account_id: FromPath[EntityId],
        db: NamedDependency[Database],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Response[list[PostingOut]]:
        postings = service.list_postings(db=db, caller=request.user, account_id=account_id, before=cursor, limit=limit)
        return page(request, [posting_out(p) for p in postings], limit=limit)


def posting_out(posting: Row) -> PostingOut:
    return PostingOut(
        id=posting.id,
        transaction_id=posting.transaction_id,
        amount=format_minor(posting.amount_minor),
        balance_after=format_minor(posting.balance_after_minor),
        timestamp=posting.created_at,
    )


class InternalPostingsController(Controller):
    """Not routed by the ingress; only services holding the service credential may call it."""

    path = postings.PATH
    dependencies = {"db": database_dependency("accounts")}
    guards = [service_only]
    include_in_schema = False

    # Exempt from back-pressure: the caller has admitted the request already, and a refusal here
    # would only leave its money pending. The callers' own limits bound what arrives.
    @post("/", sync_to_thread=True, status_code=200, opt={**PUBLIC, EXEMPT: True})
    def apply_postings(self, data: JSONBody[PostingsRequest], db: NamedDependency[Database]) -> PostingsOutcome:
        return service.apply_postings(db=db, request=data)
