"""docker-compose.yml, checked statically (no Docker engine runs here): the services the
stack needs, every image pinned, ports that do not clash, every mounted file present and
well-formed, and the pipeline submitted with the Flink preset."""
import json
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def compose():
    with open(os.path.join(ROOT, "docker-compose.yml")) as fh:
        return yaml.safe_load(fh)


def test_the_stack_has_every_part(compose):
    assert set(compose["services"]) >= {
        "kafka", "qdrant", "flink-jobmanager", "flink-taskmanager", "beam-job-server",
        "beam-worker-pool", "prometheus", "grafana", "pipeline"}
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], f"{name} depends on {dependency}"
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in declared, f"{name}: named volume {source} not declared"


def _dockerfile_images(path):
    with open(path) as fh:
        return re.findall(r"^FROM\s+(\S+)", fh.read(), flags=re.M)


def test_every_image_is_pinned(compose):
    images = []
    for service in compose["services"].values():
        if "image" in service and "build" not in service:
            images.append(service["image"])
        build = service.get("build")
        if build:
            context = os.path.join(ROOT, build["context"] if isinstance(build, dict) else build)
            dockerfile = (build.get("dockerfile", "Dockerfile") if isinstance(build, dict)
                          else "Dockerfile")
            path = os.path.join(context, dockerfile)
            assert os.path.exists(path), path
            images += _dockerfile_images(path)
    images += _dockerfile_images(os.path.join(ROOT, "deploy", "dataflow", "Dockerfile"))
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), \
            f"{image} is not pinned to a version"
    # The Beam images match the Beam the launcher runs.
    import apache_beam
    for image in images:
        if image.startswith("apache/beam"):
            assert image.endswith(":" + apache_beam.__version__), image


def test_host_ports_do_not_clash(compose):
    ports = [str(p).split(":")[0] for s in compose["services"].values() for p in s.get("ports", [])]
    assert len(ports) == len(set(ports)), ports
    assert {"9092", "6333", "8081", "8099", "50000", "9090", "3000"} <= set(ports)


def test_mounted_config_files_exist_and_parse(compose):
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert os.path.exists(os.path.join(ROOT, source)), source
    with open(os.path.join(ROOT, "deploy", "prometheus.yml")) as fh:
        prometheus = yaml.safe_load(fh)
    targets = {t for job in prometheus["scrape_configs"]
               for c in job["static_configs"] for t in c["targets"]}
    assert {"flink-jobmanager:9249", "flink-taskmanager:9249", "qdrant:6333",
            "pipeline:9464"} <= targets
    with open(os.path.join(ROOT, "deploy", "grafana", "dashboards", "vectorstream.json")) as fh:
        dashboard = json.load(fh)
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for word in ("events", "dead letters", "latency", "lag", "cache"):
        assert word in titles
    flink = compose["services"]["flink-jobmanager"]["environment"]["FLINK_PROPERTIES"]
    assert "PrometheusReporterFactory" in flink and "9249" in flink


def test_the_pipeline_service_uses_the_flink_preset_and_its_flags_parse(compose):
    from vectorstream.config.options import parse_options
    from vectorstream.config.presets import apply_preset
    command = compose["services"]["pipeline"]["command"]
    assert command[:4] == ["vectorstream", "run", "--preset", "flink"]
    options = parse_options(apply_preset(command[2:]))
    all_options = options.get_all_options()
    assert all_options["runner"] == "FlinkRunner"
    assert all_options["job_endpoint"] == "beam-job-server:8099"
    assert all_options["environment_config"] == "beam-worker-pool:50000"
    assert all_options["bootstrap_servers"] == "kafka:29092"
    assert all_options["checkpointing_interval"] == 10000
