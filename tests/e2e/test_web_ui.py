"""The web UI in a real browser (Debian's chromium, driven by Playwright) against `microbank dev`:
two customers move money as they would by hand, at desktop width and at phone width, with an
accessibility check of every page they see. Each step leaves a screenshot in tests/e2e/artifacts/<test>/<width>/."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from microbank.platform import webui
from tests.factories import PASSWORD, BankClient
from tests.processes import MICROBANK, RoleProcess

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).parent / "artifacts"
# Generous: two cores shared by several test runs; every wait ends as soon as its condition holds.
WAIT_MS = 20_000

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 780}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    if not webui.is_built(webui.dist_dir(None)) or not AXE.is_file():
        pytest.fail(f"the UI is not built: {webui.BUILD_COMMAND}", pytrace=False)
    with sync_playwright() as playwright:
        # Root in a container has no user namespace for chromium's sandbox.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Visit:
    """One browser tab on the bank: it screenshots each step and checks each page with axe."""

    page: Page
    shots: Path
    problems: list[str] = field(default_factory=list)
    steps: int = 0

    def step(self, name: str) -> None:
        self.steps += 1
        self.page.screenshot(path=self.shots / f"{self.steps:02d}-{name}.png", full_page=True)
        self.check_accessibility(name)

    def check_accessibility(self, name: str) -> None:
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(' ')).join(', ')})`)"
        )
        assert violations == [], f"{name}: {violations}"

    def log_in(self, email: str) -> None:
        self.log_in_as(email, PASSWORD)
        expect(self.page.get_by_role("heading", name="Your accounts")).to_be_visible()

    def log_in_as(self, email: str, password: str) -> None:
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()

    def move(self, kind: str, amount: str, to_account: int | None = None, *, double_click: bool = False) -> None:
        page = self.page
        page.get_by_role("radio", name=kind).check()
        if to_account is not None:
            page.get_by_label("To account number").fill(str(to_account))
        page.get_by_label("Amount").fill(amount)
        button = page.get_by_role("button", name=kind, exact=True)
        button.dblclick() if double_click else button.click()


@pytest.fixture(params=list(VIEWPORTS))
def visit(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Visit]:
    width = request.param
    context = browser.new_context(viewport=VIEWPORTS[width])
    # An init script runs outside the page's Content-Security-Policy, which forbids injected scripts.
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    shots = ARTIFACTS / request.node.originalname.removeprefix("test_") / width
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    seen = Visit(page, shots)
    page.on("pageerror", lambda error: seen.problems.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: seen.problems.append(message.text) if "Content Security Policy" in message.text else None,
    )
    print(f"\nscreenshots: {shots}")
    yield seen
    context.close()


def test_two_customers_bank_in_the_browser(visit: Visit, dev_service: RoleProcess) -> None:
    page = visit.page
    with httpx.Client(base_url=dev_service.url, timeout=30) as http:
        bob, bob_headers = BankClient(http).customer(name="Bob Kim")
        bob_account = BankClient(http).open_account(bob_headers, "savings")["id"]

    # The bank down: the page says so instead of going blank.
    page.route("**/api/**", lambda route: route.abort())
    page.goto(f"{dev_service.url}/login")
    visit.log_in_as("ann@example.com", PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("The bank cannot be reached right now.")
    visit.step("bank-down")
    page.unroute("**/api/**")

    page.get_by_role("link", name="Open your bank login").click()
    visit.step("sign-up-page")
    page.get_by_label("Name").fill("Ann Lee")
    page.get_by_label("Email").fill(bob["email"])
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("Use at least 12 characters")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("An account with this email already exists. Log in instead.")).to_be_visible()
    visit.step("email-taken")
    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("status")).to_contain_text("you are signed up")
    visit.step("signed-up")

    visit.log_in_as("ann@example.com", "not the password at all")
    expect(page.get_by_role("alert")).to_have_text("The email or the password is wrong.")
    visit.log_in("ann@example.com")
    # From here on the page is never loaded again: what changes, changes live.
    page.evaluate("window.sameDocument = true")
    visit.step("no-accounts-yet")

    page.get_by_label("Account type").select_option("checking")
    page.get_by_label("Initial deposit (optional)").fill("100.00")
    page.get_by_role("button", name="Open account").click()
    expect(page.get_by_role("status")).to_contain_text("is open. Balance: $100.00.")
    row = page.get_by_role("row").filter(has_text="Checking")
    expect(row).to_contain_text("$100.00")
    ann_account = int(row.get_by_role("link").inner_text())
    visit.step("accounts")

    page.get_by_role("link", name="Move money", exact=True).first.click()
    expect(page.get_by_role("heading", name="Move money")).to_be_visible()
    # A double click sends one Idempotency-Key: the money moves once (the statement below shows it).
    visit.move("Deposit", "50.00", double_click=True)
    expect(page.get_by_role("status")).to_have_text("Completed: Deposit of $50.00. New balance: $150.00.")
    visit.step("deposited")

    visit.move("Withdrawal", "500.00")
    expect(page.get_by_role("alert")).to_contain_text("Refused: Withdrawal of $500.00. Insufficient funds")
    visit.step("withdrawal-refused")

    unread_before = int(page.get_by_test_id("unread-count").inner_text())
    visit.move("Transfer", "20.00", to_account=bob_account)
    expect(page.get_by_role("status")).to_have_text("Completed: Transfer of $20.00. New balance: $130.00.")
    # Sign-up, account opened, its opening deposit, deposit, refusal, transfer: six, the last
    # ones pushed by the server's event stream into this page.
    expect(page.get_by_test_id("unread-count")).to_have_text("6")
    assert unread_before < 6
    visit.step("transferred")

    page.get_by_role("link", name=re.compile("Notifications")).click()
    expect(page.get_by_text(f"Transfer of $20.00 to account {bob_account} completed.")).to_be_visible()
    visit.step("notifications")
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_test_id("unread-count")).to_have_text("0")

    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name=str(ann_account), exact=True).click()
    statement = page.get_by_role("table", name=re.compile("Statement"))
    expect(statement.get_by_role("row").nth(1)).to_contain_text("\N{MINUS SIGN}$20.00")
    expect(statement.get_by_role("row").nth(1)).to_contain_text("$130.00")
    expect(statement.get_by_role("row")).to_have_count(4)
    page.get_by_label("Show").select_option("transfer")
    expect(page.get_by_role("table", name=re.compile("Transactions")).get_by_role("row")).to_have_count(2)
    visit.step("history")
    assert page.evaluate("window.sameDocument") is True

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You have logged out.")
    visit.log_in(bob["email"])
    expect(page.get_by_role("row").filter(has_text="Savings")).to_contain_text("$20.00")
    visit.step("second-customer-paid")

    assert visit.problems == []


def test_an_admin_reads_every_user_and_account_by_keyboard_alone(visit: Visit, dev_service: RoleProcess) -> None:
    page = visit.page
    with httpx.Client(base_url=dev_service.url, timeout=30) as http:
        bank = BankClient(http)
        admin = bank.sign_up(name="Ada Admin")
        _, customer = bank.customer(name="Cy Customer")
        bank.open_account(customer, "savings", initial_deposit="12.34")
    granted = subprocess.run(
        [str(MICROBANK), "grant-admin", admin["email"]], env=dev_service.env, capture_output=True, text=True, timeout=60
    )
    assert granted.returncode == 0, granted.stderr

    page.goto(f"{dev_service.url}/login")
    expect(page.get_by_label("Email")).to_be_visible()
    page.keyboard.press("Tab")  # the skip link comes first
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(admin["email"])
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your accounts")).to_be_visible()

    page.get_by_role("link", name="Admin").focus()
    page.keyboard.press("Enter")
    users = page.get_by_role("table", name="Every user")
    expect(users.get_by_role("row").filter(has_text="Cy Customer")).to_contain_text("customer")
    expect(users.get_by_role("row").filter(has_text="Ada Admin")).to_contain_text("admin")
    expect(page.get_by_role("table", name="Every account").get_by_role("row").nth(1)).to_contain_text("$12.34")
    visit.step("admin")
    assert visit.problems == []
