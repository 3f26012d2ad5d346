"""Beam's Java pieces (the IO expansion service, the Flink job server), fetched with Maven
into Beam's own jar cache (~/.apache_beam/cache/jars) under the names Beam looks for, so
nothing downloads when a pipeline starts. Versions are pinned to the Beam SDK's.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import List, Optional

import apache_beam as beam

from vectorstream.runners.maven import MavenError

BEAM_VERSION = beam.__version__
JAR_CACHE = os.path.expanduser("~/.apache_beam/cache/jars")
FLINK_VERSION = "1.19"

IO_EXPANSION_SERVICE = "beam-sdks-java-io-expansion-service"
FLINK_JOB_SERVER = f"beam-runners-flink-{FLINK_VERSION}-job-server"


def beam_jar(artifact: str, version: str = BEAM_VERSION) -> str:
    """The path of org.apache.beam:`artifact`:`version` in Beam's jar cache, fetched with
    `mvn dependency:copy` when missing. Raises MavenError saying what to do."""
    path = os.path.join(JAR_CACHE, f"{artifact}-{version}.jar")
    if os.path.exists(path):
        return path
    if shutil.which("mvn") is None:
        raise MavenError(f"{artifact}-{version}.jar is not in {JAR_CACHE} and Maven (`mvn`) "
                         f"is not installed to fetch it: install Maven, or put the jar there.")
    os.makedirs(JAR_CACHE, exist_ok=True)
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-U", "dependency:copy",
         f"-Dartifact=org.apache.beam:{artifact}:{version}:jar",
         f"-DoutputDirectory={JAR_CACHE}"], capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(path):
        output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
        reason = next((line.split("Unable to find artifact.")[-1].strip()
                       for line in output.splitlines()
                       if "find artifact" in line or "not found" in line
                       or "Could not resolve" in line), output.strip()[-300:])
        reason = " ".join(reason.replace("[ERROR]", "").split())[:300]
        raise MavenError(
            f"could not fetch org.apache.beam:{artifact}:{version} with Maven ({reason}). "
            f"Put the jar at {path} by hand, or run with --kafka_reader=python on "
            f"--preset direct or --preset prism.")
    return path


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
    from vectorstream.pipeline.options import UsageError
    raise UsageError(f"--java_environment must be PROCESS:/path/to/java/boot or EMBEDDED, "
                     f"not {java_environment!r}")


def kafka_expansion_service(java_environment: Optional[str] = None):
    """Beam's expansion service for ReadFromKafka, run from the cached jar."""
    from apache_beam.transforms.external import JavaJarExpansionService
    return JavaJarExpansionService(beam_jar(IO_EXPANSION_SERVICE),
                                   append_args=environment_args(java_environment))


def flink_job_server_jar() -> str:
    return beam_jar(FLINK_JOB_SERVER)


JVM_RUNNERS = ("FlinkRunner", "DataflowRunner", "SparkRunner", "SamzaRunner")


def runner_name(options) -> str:
    from apache_beam.options.pipeline_options import StandardOptions
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return "DirectRunner"
    return runner if isinstance(runner, str) else type(runner).__name__


def choose_reader(options) -> str:
    """`--kafka_reader`, with auto resolved: java where the runner has JVM workers."""
    from vectorstream.pipeline.options import VectorStreamOptions
    choice = options.view_as(VectorStreamOptions).kafka_reader
    if choice != "auto":
        return choice
    name = runner_name(options)
    return "java" if any(name.endswith(r) or name == r[:-6] for r in JVM_RUNNERS) else "python"


# ---------------------------------------------------------------------------------------
# Prism (Beam's portable local runner, written in Go): built from the Go module proxy at
# the SDK's version, since Beam would otherwise download its release binary from GitHub.

PRISM_BIN = os.path.expanduser(f"~/.cache/vectorstream/prism-{BEAM_VERSION}/prism")


def prism_binary() -> str:
    """The Prism job server binary for this Beam version, built with `go install` once."""
    if os.path.exists(PRISM_BIN):
        return PRISM_BIN
    if shutil.which("go") is None:
        raise MavenError("the PrismRunner needs Go to build Beam's Prism runner "
                         f"(github.com/apache/beam/sdks/v2/go/cmd/prism@v{BEAM_VERSION}): "
                         "install Go, or pass --prism_location with a prism binary.")
    env = {**os.environ, "GOBIN": os.path.dirname(PRISM_BIN), "GOFLAGS": "-mod=mod"}
    proc = subprocess.run(
        ["go", "install", f"github.com/apache/beam/sdks/v2/go/cmd/prism@v{BEAM_VERSION}"],
        capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not os.path.exists(PRISM_BIN):
        tail = " ".join((proc.stdout + proc.stderr).split())[-300:]
        raise MavenError(f"could not build Beam's Prism runner v{BEAM_VERSION} with Go "
                         f"({tail}); pass --prism_location with a prism binary.")
    return PRISM_BIN
