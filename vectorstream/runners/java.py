"""Beam's Java pieces: the Flink 1.19 job server and the KafkaIO expansion service.

Beam publishes neither as a shaded jar on Maven Central at recent versions, but their
parts are there. The poms beside this file (`flink-job-server-pom.xml`,
`kafka-expansion-service-pom.xml`) assemble each into one jar with Maven's shade plugin,
on first use, into ~/.cache/vectorstream/beam-java-<version>/ (like Kafka's jars). They
are named `vectorstream-assembled-…` so nobody takes them for Beam's own artifacts, and
passed to Beam by path (`--flink_job_server_jar`, JavaJarExpansionService). The versions
are pinned in the poms; docs/runners.md says why these and what the mix risks.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import List, Optional

from vectorstream.config.options import UsageError
from vectorstream.io.maven import MavenError, locked

RUNNERS_DIR = os.path.dirname(os.path.abspath(__file__))

FLINK_VERSION = "1.19"

FLINK_JOB_SERVER_POM = os.path.join(RUNNERS_DIR, "flink-job-server-pom.xml")
KAFKA_EXPANSION_SERVICE_POM = os.path.join(RUNNERS_DIR, "kafka-expansion-service-pom.xml")


def _pom_property(pom: str, name: str) -> str:
    with open(pom) as fh:
        return re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", fh.read()).group(1)


def _pom_final_name(pom: str) -> str:
    with open(pom) as fh:
        final = re.search(r"<finalName>([^<]+)</finalName>", fh.read()).group(1)
    return final.replace("${beam.version}", _pom_property(pom, "beam.version"))


def java_beam_version() -> str:
    """The Beam version of the Java side (the assembled jars), pinned in the poms."""
    return _pom_property(FLINK_JOB_SERVER_POM, "beam.version")


def jar_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(cache, "vectorstream", f"beam-java-{java_beam_version()}")


def _maven_reason(output: str) -> str:
    """The line of Maven's output that says what went wrong, without colour codes."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    reason = next((line for line in output.splitlines()
                   if "Could not find artifact" in line or "Could not resolve" in line
                   or "Failed to execute goal" in line or "[FATAL]" in line),
                  output.strip()[-300:])
    return " ".join(reason.replace("[ERROR]", "").split())[:400]


def assembled_jar(pom: str, dest: Optional[str] = None) -> str:
    """The jar `pom` assembles, built with `mvn package` once (later calls find it).
    Raises MavenError with one line that says what to do."""
    dest = dest or jar_dir()
    path = os.path.join(dest, _pom_final_name(pom) + ".jar")
    if os.path.exists(path):
        return path
    if shutil.which("mvn") is None:
        raise MavenError(f"{os.path.basename(path)} is not built yet and Maven (`mvn`) is not "
                         f"installed to build it: install Maven (apt-get install maven), or "
                         f"run with --kafka_reader=python on --preset direct or prism.")
    os.makedirs(dest, exist_ok=True)
    name = os.path.splitext(os.path.basename(pom))[0]
    with locked(os.path.join(dest, f".{name}.lock")):
        if os.path.exists(path):  # built by another process while this one waited
            return path
        build = os.path.join(dest, f"build-{name}")
        shutil.rmtree(build, ignore_errors=True)
        os.makedirs(build)
        shutil.copy(pom, os.path.join(build, "pom.xml"))
        proc = subprocess.run(["mvn", "-q", "-B", "package"], cwd=build,
                              capture_output=True, text=True)
        built = os.path.join(build, "target", os.path.basename(path))
        if proc.returncode != 0 or not os.path.exists(built):
            raise MavenError(
                f"could not build {os.path.basename(path)} with Maven from "
                f"{os.path.basename(pom)} ({_maven_reason(proc.stdout + proc.stderr)}); "
                f"or run with --kafka_reader=python on --preset direct or prism.")
        os.replace(built, path)
        shutil.rmtree(build, ignore_errors=True)
    return path


def flink_job_server_jar() -> str:
    return assembled_jar(FLINK_JOB_SERVER_POM)


def kafka_expansion_service_jar() -> str:
    return assembled_jar(KAFKA_EXPANSION_SERVICE_POM)


def environment_args(java_environment: Optional[str]) -> List[str]:
    """--java_environment → the expansion service's environment flags."""
    if not java_environment:
        return []
    kind, _, config = java_environment.partition(":")
    kind = kind.upper()
    if kind == "EMBEDDED" and not config:
        return ["--defaultEnvironmentType=EMBEDDED"]
    if kind == "PROCESS" and config:
        return ["--defaultEnvironmentType=PROCESS",
                "--defaultEnvironmentConfig=" + json.dumps({"command": config})]
    raise UsageError(f"--java_environment must be PROCESS:/path/to/java/boot or EMBEDDED, "
                     f"not {java_environment!r}")


def kafka_expansion_service(java_environment: Optional[str] = None,
                            legacy_read: bool = False, jar: Optional[str] = None):
    """The expansion service for ReadFromKafka, run from an assembled jar (by default the
    KafkaIO one; the Flink job server jar carries the same classes). `legacy_read` (on
    Flink) starts it with `use_deprecated_read`: KafkaIO as an unbounded source whose
    checkpoints commit offsets (its splittable-DoFn read fails on Flink in streaming with
    "State backend must be locked when retrieving the current key"); Prism runs only the
    splittable-DoFn read (it refuses the primitive Read of the legacy one)."""
    from apache_beam.transforms.external import JavaJarExpansionService
    return JavaJarExpansionService(
        jar or kafka_expansion_service_jar(),
        append_args=environment_args(java_environment) + (
            ["--experiments=use_deprecated_read"] if legacy_read else []))
