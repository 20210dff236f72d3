"""A throwaway PostgreSQL server of its own (initdb in a temporary directory, its own port), so a
benchmark can count every CPU second the database spends, and nobody else's queries with it."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from microbank.drills.processes import free_port

POSTGRES_BIN = Path(os.environ.get("POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"]


class PostgresNode:
    """`with PostgresNode() as pg:` a fresh server on 127.0.0.1:pg.port, trust auth, user postgres."""

    def __init__(self, *, max_connections: int = 300) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="mbpg-"))
        self.port = free_port()
        self.max_connections = max_connections
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def _run(self, *command: str) -> None:
        subprocess.run([*as_postgres_user(), *command], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresNode:
        self._run(str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c max_connections={self.max_connections}"
        )
        self._run(
            str(POSTGRES_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.home / "log"),
            "-w",
            "start",
        )
        return self

    @property
    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def pids(self) -> list[int]:
        """The server and every process it runs: backends, WAL writer, checkpointer..."""
        root = self.postmaster_pid
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == root:
                    children.append(int(entry.name))
        return [root, *children]

    def delete(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PostgresNode:
        try:
            return self.start()
        except BaseException:
            self.delete()
            raise

    def __exit__(self, *_: object) -> None:
        self.delete()
