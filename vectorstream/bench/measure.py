"""What a benchmark run measures beside the pipeline: CPU time (ours and a local
server's), memory and GPU samples."""
from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from typing import Dict, Optional

import apache_beam as beam


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DirectRunner's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def listening_pid(url: str) -> Optional[int]:
    """The local process listening on `url`'s port (a Qdrant server on this machine), to
    read its CPU time; None when it is elsewhere or cannot be told."""
    from urllib.parse import urlparse
    parsed = urlparse(url)
    if parsed.hostname not in ("localhost", "127.0.0.1"):
        return None
    port = parsed.port or 6333
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                for line in list(fh)[1:]:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                        inodes.add(fields[9])
        except OSError:
            pass
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def process_cpu_seconds(pid: Optional[int]) -> Optional[float]:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """Calls `read` every `interval` seconds and keeps what it returns, until stopped or
    `read` fails (the thing sampled is not there)."""

    def __init__(self, interval: float, read):
        super().__init__(daemon=True)
        self.samples: list = []
        self._interval, self._read = interval, read
        self._stop = threading.Event()

    def run(self):
        while not self._stop.wait(self._interval):
            try:
                self.samples.append(self._read())
            except (OSError, IndexError, KeyError, ValueError, subprocess.SubprocessError):
                return

    def stop(self):
        self._stop.set()


def rss_mb() -> tuple:
    """This process's resident memory, in all and anonymous alone (MB): is it flat over a
    long run? The anonymous part is the heap (pipeline, model, the store's in-RAM parts);
    the rest is file pages mapped in (libraries, the embedded store's memory-mapped
    segments), which the kernel can drop."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "RssAnon:")):
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0])  # kB
    return round(fields["VmRSS"] / 1024, 1), round(fields["RssAnon"] / 1024, 1)


def rounded(value):
    return None if value is None else round(value, 3)


def gpu_sample() -> tuple:
    """(time, GPU utilisation %, GPU memory MB) from nvidia-smi."""
    out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         timeout=5).stdout.splitlines()[0]
    util, memory = (float(x) for x in out.split(","))
    return time.time(), util, memory


class GpuSampler(Sampler):
    """nvidia-smi twice a second: GPU utilisation and memory while a pipeline runs."""

    def __init__(self):
        super().__init__(0.5, gpu_sample)

    def summary(self, since: float, until: float) -> Optional[Dict]:
        inside = [s for s in self.samples if since <= s[0] <= until]
        if not inside:
            return None
        return {"gpu_util_mean_pct": round(sum(s[1] for s in inside) / len(inside), 1),
                "gpu_util_max_pct": max(s[1] for s in inside),
                "gpu_memory_max_mb": max(s[2] for s in inside)}


def machine() -> Dict:
    import platform
    info = {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "beam": beam.__version__}
    try:
        import torch
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def server_settled(url: str, timeout: float = 900.0) -> float:
    """Waits until every collection on the Qdrant server at `url` is green (its optimizers
    done: the points of the last run indexed), so that the next run does not share the
    cores with the server indexing the last one's; returns the seconds waited."""
    import json
    import urllib.request

    def status(path):
        with urllib.request.urlopen(f"{url.rstrip('/')}{path}", timeout=10) as response:
            return json.load(response)["result"]
    started, greens = time.time(), 0
    while time.time() - started < timeout:
        names = [c["name"] for c in status("/collections")["collections"]]
        greens = greens + 1 if all(status(f"/collections/{name}")["status"] == "green"
                                   for name in names) else 0
        if greens == 2:  # twice, a second apart: an optimizer just asked to start has
            break
        time.sleep(1)
    return round(time.time() - started, 1)

