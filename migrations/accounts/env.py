from microbank.accounts.models import metadata
from microbank.platform.migrations import run_env

run_env(metadata)
