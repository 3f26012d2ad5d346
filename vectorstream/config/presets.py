"""Runner presets: the flags that put the pipeline on a runner.

`vectorstream run --preset NAME [flags]` puts the preset's flags first, so any flag given
on the command line wins. `vectorstream presets` prints each with a copy-paste command.
Every preset is plain Beam flags: nothing here that a `python -m vectorstream run` with
the same flags would not do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from vectorstream.config.options import UsageError


@dataclass
class Preset:
    name: str
    summary: str
    flags: List[str]
    required: List[Tuple[str, str]] = field(default_factory=list)  # (flag, what it is)
    example: str = ""


DATAFLOW_IMAGE = "REGION-docker.pkg.dev/PROJECT/vectorstream/worker:0.1.0"

PRESETS: Dict[str, Preset] = {p.name: p for p in [
    Preset("direct", "One process (Beam's DirectRunner): laptops, tests, small shops.",
           ["--runner=DirectRunner", "--kafka_reader=python"],
           example="vectorstream run --preset direct --bootstrap_servers localhost:9092 "
                   "--topic ecommerce-events"),
    Preset("prism",
           "Beam's portable Prism runner (a Go job server, built from the Go module proxy "
           "on first use): the same portable path as Flink (job service, Fn API, bundle "
           "finalization), on one machine; Python runs in this process (LOOPBACK).",
           ["--runner=PrismRunner", "--kafka_reader=python"],
           example="vectorstream run --preset prism --topic ecommerce-events"),
    Preset("flink-local",
           "An embedded Flink mini-cluster started by the job server on this machine "
           "(`--flink_master=[local]`); Python runs in this process (LOOPBACK), or in "
           "`--sdk_worker_parallelism` worker processes when that is above 1.",
           ["--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
            "--parallelism=2", "--checkpointing_interval=10000", "--kafka_reader=java"],
           example="vectorstream run --preset flink-local --topic ecommerce-events"),
    Preset("flink",
           "A Flink cluster: `vectorstream flink start` (a job manager, two task managers "
           "and a Python worker pool on this machine), the docker-compose stack, or your "
           "own. The job server submits to --flink_master; Python runs in the SDK worker "
           "pool (EXTERNAL environment, one process per worker); Kafka is read by Beam's "
           "Java KafkaIO inside the task managers.",
           ["--runner=FlinkRunner", "--flink_master=localhost:8081", "--flink_version=1.19",
            "--parallelism=2", "--streaming", "--checkpointing_interval=10000",
            "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
            "--kafka_reader=java"],
           example="vectorstream flink start && vectorstream run --preset flink "
                   "--topic ecommerce-events --qdrant_url http://localhost:6333"),
    Preset("dataflow-gpu",
           "Google Cloud Dataflow, streaming engine, one NVIDIA L4 per worker; the worker "
           "image (runners/dataflow/Dockerfile) carries our package, CUDA torch and the "
           "model, so nothing downloads on a worker.",
           ["--runner=DataflowRunner", "--streaming", "--enable_streaming_engine",
            "--experiments=use_runner_v2",
            "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;"
            "install-nvidia-driver",
            "--worker_machine_type=g2-standard-8", "--max_num_workers=4",
            "--sdk_location=container", "--device=cuda", "--model=/opt/vectorstream/model",
            "--batch_events=4096", "--inference_batch_size=512", "--kafka_reader=java"],
           required=[("--project", "your GCP project"), ("--region", "e.g. us-central1"),
                     ("--temp_location", "gs://BUCKET/tmp"),
                     ("--sdk_container_image", f"the worker image you pushed, e.g. "
                                               f"{DATAFLOW_IMAGE}"),
                     ("--qdrant_url", "your Qdrant server, e.g. https://qdrant.example:6333"),
                     ("--bootstrap_servers", "your Kafka brokers")],
           example="vectorstream run --preset dataflow-gpu --project my-project "
                   "--region us-central1 --temp_location gs://my-bucket/tmp "
                   f"--sdk_container_image {DATAFLOW_IMAGE} "
                   "--qdrant_url https://qdrant.example:6333 "
                   "--bootstrap_servers broker-1:9092 --topic ecommerce-events "
                   "--kafka_config security.protocol=SASL_SSL "
                   "--kafka_config sasl.password=env:KAFKA_PASSWORD"),
]}

# Flags the preset sets that the job gives again → the job's value wins (argparse keeps
# the last), and the preset's remain visible in the pipeline options for the record.


def apply_preset(argv: List[str]) -> List[str]:
    """Expands `--preset NAME` (or `--preset=NAME`) in argv into the preset's flags, put
    first so the command line overrides them. Raises UsageError for an unknown preset or
    a missing required flag."""
    name: Optional[str] = None
    rest: List[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--preset":
            name = next(args, None)
            if name is None:
                raise UsageError("--preset needs a name: " + ", ".join(PRESETS))
        elif arg.startswith("--preset="):
            name = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if name is None:
        return rest
    preset = PRESETS.get(name)
    if preset is None:
        raise UsageError(f"unknown --preset {name!r}: choose one of {', '.join(PRESETS)} "
                         f"(`vectorstream presets` shows each)")
    given = {a.split("=", 1)[0] for a in rest if a.startswith("--")}
    missing = [f"{flag} ({what})" for flag, what in preset.required if flag not in given]
    if missing:
        raise UsageError(f"--preset {name} also needs: {'; '.join(missing)}")
    return preset.flags + rest


def describe_presets() -> str:
    lines = []
    for preset in PRESETS.values():
        lines += [f"{preset.name}: {preset.summary}", "  flags: " + " ".join(preset.flags)]
        if preset.required:
            lines.append("  you give: " + ", ".join(flag for flag, _ in preset.required))
        lines += [f"  e.g.: {preset.example}", ""]
    return "\n".join(lines)
