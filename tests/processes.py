"""The bank's roles as real processes for every test layer that needs one; the package's own
process tools, which drills and benchmarks use too."""

from microbank.drills.processes import MICROBANK, READY_TIMEOUT, RoleFailed, RoleProcess, free_port

__all__ = ["MICROBANK", "READY_TIMEOUT", "RoleFailed", "RoleProcess", "free_port"]
