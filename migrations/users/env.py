from microbank.platform.migrations import run_env
from microbank.users.models import Base

run_env(Base.metadata)
