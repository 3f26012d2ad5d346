"""Beam's Prism runner (a portable job server written in Go), built from the Go module
proxy at the SDK's version, since Beam would otherwise download its release binary from
GitHub."""
from __future__ import annotations

import os
import shutil
import subprocess

import apache_beam as beam

from vectorstream.io.maven import MavenError

BEAM_VERSION = beam.__version__  # the Python SDK
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
