"""A local Flink 1.19 cluster without Docker (`vectorstream flink start|stop|status|cancel`),
and cancelling jobs on any Flink cluster through its REST API.

Flink's own distribution comes from PyPI (`flink_dist`). `LocalFlink` writes a
configuration of its own under a git-ignored folder (default ./data/flink: conf/, log/,
run/, checkpoints/) and starts, with Flink's own scripts, a JobManager and N TaskManagers on 127.0.0.1, plus a Beam
Python SDK worker pool (Beam's `worker_pool_main`, one process per SDK worker) that the
`flink` preset's EXTERNAL environment points at.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional

from vectorstream.io.local_kafka import port_open
from vectorstream.runners.flink_dist import flink_home

_LOG = logging.getLogger(__name__)

ACTIVE_STATES = ("CREATED", "RUNNING", "RESTARTING", "FAILING", "CANCELLING", "RECONCILING",
                 "INITIALIZING", "SUSPENDED")


class FlinkError(RuntimeError):
    """The local cluster cannot start or answer; the message says what to do."""


# ---------------------------------------------------------------------------------------
# Any cluster's REST API.

def _rest(master: str, path: str, method: str = "GET", timeout: float = 10.0):
    base = master if master.startswith(("http://", "https://")) else "http://" + master
    request = urllib.request.Request(base.rstrip("/") + path, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def jobs(master: str) -> List[Dict]:
    """The cluster's jobs (id, name, state), newest first."""
    overview = _rest(master, "/jobs/overview")["jobs"]
    return sorted(({"id": j["jid"], "name": j["name"], "state": j["state"]} for j in overview),
                  key=lambda j: j["state"] not in ACTIVE_STATES)


def cancel_jobs(master: str, name: Optional[str] = None, job_id: Optional[str] = None) -> List[str]:
    """Cancels the running jobs (those named `name`, or the one `job_id`, or all);
    returns the ids cancelled. Flink's REST API: PATCH /jobs/<id>?mode=cancel."""
    cancelled = []
    for job in jobs(master):
        if job["state"] not in ACTIVE_STATES:
            continue
        if (name and job["name"] != name) or (job_id and job["id"] != job_id):
            continue
        _rest(master, f"/jobs/{job['id']}?mode=cancel", method="PATCH")
        cancelled.append(job["id"])
    return cancelled


def wait_for_jobs_to_end(master: str, ids: List[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {j["id"]: j["state"] for j in jobs(master)}
        if all(states.get(i) not in ACTIVE_STATES for i in ids):
            return
        time.sleep(0.5)
    raise FlinkError(f"Flink jobs {ids} did not end within {timeout:.0f}s of being cancelled")


# ---------------------------------------------------------------------------------------
# The local cluster.

class LocalFlink:
    """A JobManager, `taskmanagers` TaskManagers and a Python SDK worker pool on 127.0.0.1.

    Ports: REST `port` (8081), JobManager RPC `port - 1958` (6123 for 8081, Flink's own
    defaults), the worker pool `worker_pool_port` (50000). Data under `data_dir`.
    """

    def __init__(self, data_dir: str = "./data/flink", port: int = 8081,
                 taskmanagers: int = 2, slots: int = 2, worker_pool_port: int = 50000,
                 taskmanager_memory: str = "1600m"):
        self.data_dir = os.path.abspath(data_dir)
        self.port = port
        self.rpc_port = port - 1958
        self.taskmanagers = taskmanagers
        self.slots = slots
        self.worker_pool_port = worker_pool_port
        self.taskmanager_memory = taskmanager_memory
        self.conf_dir = os.path.join(self.data_dir, "conf")
        self.log_dir = os.path.join(self.data_dir, "log")
        self.pid_dir = os.path.join(self.data_dir, "run")
        self.checkpoints = os.path.join(self.data_dir, "checkpoints")

    @property
    def master(self) -> str:
        return f"localhost:{self.port}"

    @property
    def worker_pool(self) -> str:
        return f"localhost:{self.worker_pool_port}"

    # -- configuration
    def _write_config(self, home: str) -> None:
        import yaml
        os.makedirs(self.conf_dir, exist_ok=True)
        for name in os.listdir(os.path.join(home, "conf")):
            if name != "config.yaml":
                shutil.copy(os.path.join(home, "conf", name), self.conf_dir)
        with open(os.path.join(home, "conf", "config.yaml")) as fh:
            config = yaml.safe_load(fh)
        config["jobmanager"]["rpc"]["port"] = self.rpc_port
        config["taskmanager"]["numberOfTaskSlots"] = self.slots
        config["taskmanager"]["memory"]["process"]["size"] = self.taskmanager_memory
        config["parallelism"]["default"] = 2
        config["rest"]["port"] = self.port
        config["env"]["log"] = {"dir": self.log_dir}
        config["env"]["pid"] = {"dir": self.pid_dir}
        config["state"] = {"checkpoints": {"dir": "file://" + self.checkpoints}}
        # A lost TaskManager is noticed within seconds, and the job restarted from its
        # last checkpoint on the slots left, again and again while it keeps failing.
        config["heartbeat"] = {"interval": 2000, "timeout": 10000}
        # Subtasks spread over the task managers rather than packed into the first.
        config["cluster"] = {"evenly-spread-out-slots": True}
        config["restart-strategy"] = {"type": "fixed-delay", "fixed-delay": {
            "attempts": 1000, "delay": "2 s"}}
        with open(os.path.join(self.conf_dir, "config.yaml"), "w") as fh:
            yaml.safe_dump(config, fh)

    def _env(self) -> dict:
        return {**_python_env(), "FLINK_CONF_DIR": self.conf_dir}

    def _script(self, home: str, script: str, action: str) -> None:
        proc = subprocess.run([os.path.join(home, "bin", script), action], env=self._env(),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise FlinkError(f"Flink's {script} {action} failed: "
                             f"{' '.join((proc.stdout + proc.stderr).split())[-400:]}")

    # -- state
    def _pids(self, kind: str) -> List[int]:
        path = os.path.join(self.pid_dir, f"flink-{_user()}-{kind}.pid")
        pids = []
        try:
            with open(path) as fh:
                for line in fh:
                    if line.strip().isdigit() and _alive(int(line)):
                        pids.append(int(line))
        except OSError:
            pass
        return pids

    def jobmanager_pids(self) -> List[int]:
        return self._pids("standalonesession")

    def taskmanager_pids(self) -> List[int]:
        return self._pids("taskexecutor")

    def worker_pool_pid(self) -> Optional[int]:
        try:
            with open(os.path.join(self.pid_dir, "python-worker-pool.pid")) as fh:
                pid = int(fh.read().strip())
            return pid if _alive(pid) else None
        except (OSError, ValueError):
            return None

    def overview(self) -> Optional[Dict]:
        try:
            return _rest(self.master, "/overview", timeout=3)
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def status(self) -> str:
        overview = self.overview()
        if overview is None:
            if self.jobmanager_pids():
                return f"starting (JobManager pid {self.jobmanager_pids()[0]})"
            return "stopped"
        pool = self.worker_pool_pid()
        return (f"running at http://{self.master}: {overview['taskmanagers']} task managers, "
                f"{overview['slots-available']}/{overview['slots-total']} slots free, "
                f"{overview['jobs-running']} job(s) running; Python worker pool "
                + (f"at {self.worker_pool} (pid {pool})" if pool else "not running")
                + f"; logs in {self.log_dir}")

    # -- start / stop
    def start(self, timeout: float = 120.0) -> str:
        """Starts what is not running; returns the REST address once every TaskManager has
        registered."""
        if self.overview() is None and port_open("127.0.0.1", self.port):
            raise FlinkError(f"port {self.port} is taken by something that is not a Flink "
                             f"cluster: pick another with --port")
        if shutil.which("java") is None:
            raise FlinkError("Java is not installed: Flink needs Java 11 or 17 "
                             "(apt-get install openjdk-17-jre-headless).")
        home = flink_home()
        for folder in (self.log_dir, self.pid_dir, self.checkpoints):
            os.makedirs(folder, exist_ok=True)
        self._write_config(home)
        if not self.jobmanager_pids():
            self._script(home, "jobmanager.sh", "start")
        for _ in range(self.taskmanagers - len(self.taskmanager_pids())):
            self._script(home, "taskmanager.sh", "start")
        self.start_worker_pool()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            overview = self.overview()
            # A task manager registers first and reports its slots after: wait for both.
            if (overview and overview["taskmanagers"] >= self.taskmanagers
                    and overview["slots-total"] >= self.taskmanagers * self.slots):
                return f"http://{self.master}"
            if not self.jobmanager_pids():
                raise FlinkError(f"the Flink JobManager exited; see {self.log_dir}")
            time.sleep(0.5)
        raise FlinkError(f"Flink did not report {self.taskmanagers} task managers with "
                         f"{self.slots} slots each within "
                         f"{timeout:.0f}s; see {self.log_dir}")

    def start_taskmanager(self) -> None:
        """One more TaskManager (e.g. to replace one that died)."""
        self._script(flink_home(), "taskmanager.sh", "start")

    def start_worker_pool(self) -> None:
        if self.worker_pool_pid():
            return
        if port_open("127.0.0.1", self.worker_pool_port):
            raise FlinkError(f"port {self.worker_pool_port} (the Python worker pool) is taken: "
                             f"pick another with --worker_pool_port")
        proc = _start_worker_pool(self.worker_pool_port,
                                  os.path.join(self.log_dir, "python-worker-pool.log"),
                                  self._env())
        with open(os.path.join(self.pid_dir, "python-worker-pool.pid"), "w") as fh:
            fh.write(str(proc.pid))

    def stop(self) -> bool:
        """Stops the worker pool, the TaskManagers and the JobManager; False when nothing
        started from here was running."""
        running = bool(self.jobmanager_pids() or self.taskmanager_pids()
                       or self.worker_pool_pid())
        pool = self.worker_pool_pid()
        if pool:
            # SIGINT: the pool stops its SDK worker processes on the way out.
            _stop_process(pool, signal.SIGINT)
        for pid in self.taskmanager_pids() + self.jobmanager_pids():
            _stop_process(pid, signal.SIGTERM)
        for name in os.listdir(self.pid_dir) if os.path.isdir(self.pid_dir) else []:
            os.remove(os.path.join(self.pid_dir, name))
        return running


def _python_env() -> dict:
    """This environment, with this Python first on PATH: Beam's worker pool starts each
    SDK worker as `python -c …`."""
    venv_bin = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}


def _start_worker_pool(port: int, log_path: str, env: dict) -> subprocess.Popen:
    """Beam's Python SDK worker pool (`worker_pool_main`, one process per SDK worker),
    once it listens."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
             f"--service_port={port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise FlinkError(f"the Python worker pool did not start; see {log_path}")
        time.sleep(0.2)
    return proc


def _user() -> str:
    # Flink's scripts name pid files after $USER, empty when unset (as in CI containers).
    return os.environ.get("USER", "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _stop_process(pid: int, sig: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


class RunWorkerPool:
    """A Beam Python SDK worker pool for one run of the pipeline (Flink mini-cluster with
    `--sdk_worker_parallelism` above 1): each SDK worker Flink asks for is a process of its
    own. Entered, it gives the pool's address for `--environment_config`."""

    def __init__(self, log_path: Optional[str] = None):
        self._log_path = log_path
        self._proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> str:
        import socket
        import tempfile
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log_path = self._log_path or os.path.join(tempfile.gettempdir(),
                                                  f"vectorstream-worker-pool-{port}.log")
        self._proc = _start_worker_pool(port, log_path, _python_env())
        _LOG.warning("Python SDK worker pool at localhost:%d (log %s): one process per "
                     "SDK worker", port, log_path)
        return f"localhost:{port}"

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            _stop_process(self._proc.pid, signal.SIGINT)
            self._proc.wait()
