def test_a_customer_opens_an_account(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    assert account["balance"] == "0.00"
    assert bank.http.get("/api/accounts", headers=headers).json() == [account]
