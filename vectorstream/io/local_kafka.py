"""A local single-node Kafka broker (KRaft) for the demo and the tests.

Apache Kafka's jars come from Maven Central (pinned in io/kafka-pom.xml) into
~/.cache/vectorstream/kafka-<version>; the broker runs with the machine's Java on
127.0.0.1, its data and log under a git-ignored folder (default ./data/kafka).
"""
from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from typing import Optional

from vectorstream.io.maven import HERE, copy_dependencies

_LOG = logging.getLogger(__name__)

POM = os.path.join(HERE, "kafka-pom.xml")
TOOLS_POM = os.path.join(HERE, "kafka-tools-pom.xml")


def kafka_version() -> str:
    with open(POM) as fh:
        return re.search(r"<kafka.version>([^<]+)</kafka.version>", fh.read()).group(1)


def jar_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(cache, "vectorstream", f"kafka-{kafka_version()}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalKafka:
    def __init__(self, data_dir: str = "./data/kafka", port: int = 9092,
                 controller_port: Optional[int] = None, sasl_port: Optional[int] = None,
                 sasl_users: Optional[dict] = None):
        """`sasl_port` adds a SASL_PLAINTEXT (PLAIN) listener for `sasl_users` {name: password}
        (tests of authenticated clients)."""
        self.data_dir = os.path.abspath(data_dir)
        self.port = port
        self.controller_port = controller_port or port + 1
        self.sasl_port = sasl_port
        self.sasl_users = sasl_users or {}
        self.pid_file = os.path.join(self.data_dir, "broker.pid")
        self.log_file = os.path.join(self.data_dir, "broker.log")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> Optional[int]:
        try:
            with open(self.pid_file) as fh:
                pid = int(fh.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def status(self) -> str:
        pid = self.pid()
        if pid and port_open("127.0.0.1", self.port):
            return f"running (pid {pid}) at {self.bootstrap}, data in {self.data_dir}"
        if port_open("127.0.0.1", self.port):
            return f"a broker not started by us is listening at {self.bootstrap}"
        return "stopped"

    def _write_config(self) -> str:
        logs = os.path.join(self.data_dir, "logs")
        path = os.path.join(self.data_dir, "server.properties")
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        sasl = ""
        if self.sasl_port:
            listeners += f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
            users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl_users.items())
            sasl = ("sasl.enabled.mechanisms=PLAIN\n"
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};\n")
        with open(path, "w") as fh:
            fh.write(f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}
listeners={listeners},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners={listeners}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
{sasl}
log.dirs={logs}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16000000
replica.fetch.max.bytes=16000000
auto.create.topics.enable=false
""")
        return path

    def start(self, timeout: float = 90.0) -> str:
        """Starts the broker unless one already answers on the port; returns bootstrap."""
        if port_open("127.0.0.1", self.port):
            return self.bootstrap
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java is not installed: the local Kafka broker needs Java 17+ "
                               "(apt-get install openjdk-17-jre-headless).")
        jars = jar_dir()
        copy_dependencies(POM, jars)
        os.makedirs(self.data_dir, exist_ok=True)
        config = self._write_config()
        os.chmod(config, 0o600)  # it may hold the SASL users' passwords
        classpath = os.path.join(jars, "*")
        if not os.path.exists(os.path.join(self.data_dir, "logs", "meta.properties")):
            # Kafka's own ids never start with "-" (it would read as a flag); neither do ours.
            cluster = "v" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[1:22]
            proc = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                                   "--standalone", "-t", cluster, "-c", config],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"formatting the Kafka data folder {self.data_dir} failed:\n"
                                   f"{(proc.stdout + proc.stderr)[-2000:]}")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-cp", classpath,
                 "kafka.Kafka", config],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        with open(self.pid_file, "w") as fh:
            fh.write(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with {proc.returncode}; see "
                                   f"{self.log_file}")
            if port_open("127.0.0.1", self.port):
                from vectorstream.io.kafka_admin import check_reachable
                check_reachable(self.bootstrap, timeout=20)
                return self.bootstrap
            time.sleep(0.3)
        raise RuntimeError(f"the Kafka broker did not open port {self.port} within "
                           f"{timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        try:
            os.remove(self.pid_file)
        except OSError:
            pass
        return True


def describe_group(bootstrap: str, group: str, timeout: float = 120.0) -> list:
    """Kafka's own view of a consumer group: what `kafka-consumer-groups.sh --bootstrap-server
    B --describe --group G` prints (its class, ConsumerGroupCommand, from Maven Central's
    kafka-tools, run with the machine's Java), one dict a partition: topic, partition,
    current_offset, log_end_offset, lag (None where the group has no offset)."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java is not installed: Kafka's tools need Java 17+")
    tools = os.path.join(os.path.dirname(jar_dir()), f"kafka-tools-{kafka_version()}")
    copy_dependencies(TOOLS_POM, tools)
    proc = subprocess.run(
        [java, "-cp", os.path.join(tools, "*"),
         "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
         "--bootstrap-server", bootstrap, "--describe", "--group", group],
        capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"kafka-consumer-groups --describe failed: "
                           f"{(proc.stdout + proc.stderr)[-500:]}")
    rows, header = [], None
    for line in proc.stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["GROUP"]:
            header = fields
        elif header and len(fields) >= len(header) - 3 and fields[0] == group:
            row = dict(zip(header, fields))
            number = lambda v: None if v in (None, "-") else int(v)  # noqa: E731
            rows.append({"topic": row["TOPIC"], "partition": int(row["PARTITION"]),
                         "current_offset": number(row.get("CURRENT-OFFSET")),
                         "log_end_offset": number(row.get("LOG-END-OFFSET")),
                         "lag": number(row.get("LAG"))})
    return rows
