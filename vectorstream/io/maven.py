"""Fetching pinned Java artifacts from Maven Central with the machine's `mvn`, and a file
lock for building things once per machine."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))


class MavenError(RuntimeError):
    pass


def copy_dependencies(pom: str, dest: str) -> List[str]:
    """Resolves the dependencies of `pom` into `dest` (once); returns the jar paths."""
    marker = os.path.join(dest, ".complete")
    if not os.path.exists(marker):
        if shutil.which("mvn") is None:
            raise MavenError("Maven (`mvn`) is not installed: install it (apt-get install "
                             "maven) so the Java jars can be fetched from Maven Central.")
        os.makedirs(dest, exist_ok=True)
        proc = subprocess.run(
            ["mvn", "-q", "-B", "-f", pom, "dependency:copy-dependencies",
             f"-DoutputDirectory={dest}"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise MavenError(f"mvn could not fetch the jars of {pom}:\n"
                             f"{(proc.stdout + proc.stderr)[-2000:]}")
        open(marker, "w").close()
    return sorted(os.path.join(dest, f) for f in os.listdir(dest) if f.endswith(".jar"))


@contextlib.contextmanager
def locked(lock_path: str):
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
