"""A throw-away PostgreSQL server for tests, the soak and the bench: Debian's `postgresql`
binaries (/usr/lib/postgresql/*/bin), a cluster made by initdb in a temporary folder, listening
only on a unix socket in that folder, trusted and unreachable from outside.

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` OS user
(Debian's package creates it); as anyone else, to that user. No binaries is an error that says
what to install, never a skip (.ci/run installs the package).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_USER = "postgres"  # the database superuser initdb creates


def find_bin_dir() -> Path:
    """The newest installed server's bin folder (initdb, pg_ctl)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError(
        "PostgreSQL's server binaries are missing: install Debian's `postgresql` package"
        " (`apt-get install postgresql`; .ci/run does this as root)"
    )


@dataclass
class Cluster:
    root: Path
    bin_dir: Path
    os_user: str | None  # run the server as this OS user (we are root), else as ourselves

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL to a database of this cluster, over the unix socket."""
        return f"postgresql://{PG_USER}@/{dbname}?host={self.socket_dir}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb + pg_ctl start in a new temporary folder; stop() ends the server and removes it."""
    bin_dir = find_bin_dir()
    os_user = PG_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="nq-pg-", dir="/tmp"))  # a short socket path
    cluster = Cluster(root, bin_dir, os_user)
    if os_user is not None:
        shutil.chown(root, os_user)
    data = root / "data"
    try:
        cluster._run(
            "initdb", "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{root}'"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        cluster._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
        )
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(
            f"could not start a test PostgreSQL: {exc.stderr.decode(errors='replace')}{log}"
        ) from None
    return cluster
