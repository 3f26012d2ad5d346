"""Flink's own distribution, from PyPI: `apache-flink` carries `bin/` and `conf/`,
`apache-flink-libraries` the jars (`lib/`, `opt/`, `plugins/`). Both are downloaded with
pip once, pinned at FLINK_DIST_VERSION, and laid out as a FLINK_HOME under
~/.cache/vectorstream/flink-<version>/."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

from vectorstream.io.maven import MavenError, locked

FLINK_DIST_VERSION = "1.19.3"


def dist_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(cache, "vectorstream", f"flink-{FLINK_DIST_VERSION}")


def flink_home() -> str:
    """FLINK_HOME of the pinned distribution, downloaded from PyPI and laid out once."""
    home = dist_dir()
    if os.path.exists(os.path.join(home, ".complete")):
        return home
    os.makedirs(home, exist_ok=True)
    with locked(os.path.join(home, ".lock")):
        if os.path.exists(os.path.join(home, ".complete")):
            return home
        download = os.path.join(home, "download")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", download,
             f"apache-flink=={FLINK_DIST_VERSION}",
             f"apache-flink-libraries=={FLINK_DIST_VERSION}"],
            capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " ".join((proc.stdout + proc.stderr).split())[-300:]
            raise MavenError(f"could not download Flink {FLINK_DIST_VERSION} from PyPI "
                             f"(apache-flink, apache-flink-libraries): {tail}")
        for name in os.listdir(download):
            path = os.path.join(download, name)
            if name.endswith(".whl"):  # apache-flink: pyflink/bin, pyflink/conf
                with zipfile.ZipFile(path) as whl:
                    for member in whl.namelist():
                        if (member.startswith(("pyflink/bin/", "pyflink/conf/"))
                                and not member.endswith("/")):
                            _extract(whl.open(member), home, member[len("pyflink/"):])
            elif name.endswith(".tar.gz"):  # apache-flink-libraries: deps/{lib,opt,plugins,bin}
                with tarfile.open(path) as sdist:
                    for member in sdist.getmembers():
                        parts = member.name.split("/", 2)
                        if member.isfile() and len(parts) == 3 and parts[1] == "deps":
                            _extract(sdist.extractfile(member), home, parts[2])
        for script in os.listdir(os.path.join(home, "bin")):
            os.chmod(os.path.join(home, "bin", script), 0o755)
        shutil.rmtree(download, ignore_errors=True)
        if not os.path.exists(os.path.join(home, "lib", f"flink-dist-{FLINK_DIST_VERSION}.jar")):
            raise MavenError(f"the Flink distribution in {home} has no flink-dist jar: remove "
                             f"the folder and try again")
        open(os.path.join(home, ".complete"), "w").close()
    return home


def _extract(source, home: str, relative: str) -> None:
    target = os.path.join(home, relative)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
