from microbank.platform.migrations import run_env
from microbank.transactions.models import Base

run_env(Base.metadata)
