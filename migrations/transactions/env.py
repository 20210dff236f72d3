from microbank.platform.migrations import run_env
from microbank.transactions.models import metadata

run_env(metadata)
