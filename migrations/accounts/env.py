from microbank.accounts.models import Base
from microbank.platform.migrations import run_env

run_env(Base.metadata)
