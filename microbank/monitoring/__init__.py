"""What an operator watches the bank with, as code: the Grafana dashboards, the alert rules and the
scrape configurations. `microbank monitoring` writes them to dashboards/ and deploy/monitoring/;
nothing here runs inside a role, and it holds no domain logic."""
