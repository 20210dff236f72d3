"""Users: sign-up, login (token issue) and profiles; owns the users database."""

from microbank.platform.domain import Domain
from microbank.platform.outbox import relay_worker
from microbank.users.controller import AuthController, UserController
from microbank.users.models import outbox

domain = Domain(
    name="users",
    schema_revision="users_0005",
    route_handlers=[UserController, AuthController],
    issues_tokens=True,
    workers=[relay_worker("users", outbox)],
)

__all__ = ["domain"]
