"""Ours in the benchmark: the shipped graph, built from the plan of `vectorstream run`'s flags."""
from __future__ import annotations

import os
from typing import Dict

from vectorstream.bench.source import BenchSource
from vectorstream.bench.stores import collection_of
from vectorstream.bench.workloads import COLLECTION


def build_ours(pipeline, spec: Dict) -> None:
    from vectorstream.pipeline.graph import build
    from vectorstream.pipeline.plan import resolve
    # The events collection alone, as stock Beam and the hand-written consumer write it
    # (--ours_flag=--products=on --ours_flag=--profiles=on adds the products and profiles).
    flags = ["--topic", spec["topic"], "--collection", COLLECTION, "--device", spec["device"],
             "--dead_letter_path", os.path.join(spec["dir"], "ours-dead-letters.jsonl"),
             "--progress_seconds", "0", "--products", "off", "--profiles", "off",
             *spec.get("ours_flags", [])]
    if spec["model"]:
        flags += ["--model", spec["model"]]
    if spec.get("qdrant_url"):
        flags += ["--qdrant_url", spec["qdrant_url"], "--collection", collection_of(spec, "ours")]
        if spec.get("grpc_port"):
            flags += ["--qdrant_grpc_port", str(spec["grpc_port"])]
    elif spec["store"] == "local":
        flags += ["--qdrant_url", "local://" + os.path.join(spec["dir"], "ours-store")]
    else:
        flags += ["--qdrant_path", os.path.join(spec["dir"], "ours-store")]
    plan = resolve(flags)
    vs = plan.vs
    build(pipeline, plan, source=BenchSource(spec, vs.batch_events, vs.window_seconds))
