"""The traffic scenario of `microbank traffic`, run by Locust, with its web UI and its charts:

    locust -f bench/locustfile.py --host http://127.0.0.1:8000
    locust -f bench/locustfile.py --host http://127.0.0.1:8000 --headless -u 16 -r 4 -t 60s

Each Locust user is one customer: it signs up, logs in, opens an account and funds it, then draws
its calls from the same mix (microbank.drills.traffic.MIX) with the same rules: a money request
carries an Idempotency-Key and is sent again with that key after a 503 or a dropped connection.
Locust counts each attempt; a retried attempt shows as a failure named after its status.
TRAFFIC_SEED (default 1) seeds the mix. Locust is not a dependency of microbank:
`pip install locust` (the dev extras carry it).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from locust import HttpUser, constant, task

from microbank.drills.traffic import Answer, Call, Customer, Dropped, Scenario, perform

SCENARIO = Scenario(int(os.environ.get("TRAFFIC_SEED", "1")))
_enrolled = itertools.count()


class BankCustomer(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.customer: Customer
        self.customer, funding = SCENARIO.enrol(self._sender("enrol"), next(_enrolled))
        self._perform(funding)

    @task
    def act(self) -> None:
        SCENARIO.refresh(self._sender("log_in"), self.customer)
        _, call = SCENARIO.next_call(self.customer)
        self._perform(call)

    def _perform(self, call: Call) -> None:
        perform(self._sender(call.operation, call), call, give_up_after=60)

    def _sender(self, name: str, call: Call | None = None):
        def send(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> Answer:
            with self.client.request(
                method, path, json=body, headers=headers, name=name, catch_response=True
            ) as response:
                if response.status_code == 0:
                    response.failure(f"no answer: {response.error}")
                    raise Dropped(str(response.error))
                if call is None or call.expected(response.status_code):
                    response.success()
                else:
                    response.failure(f"{response.status_code}")
                return Answer(
                    response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content
                )

        return send
