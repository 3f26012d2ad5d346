"""`vectorstream bench --baseline plain`: the two commands a user would run for a
backfill, timed from start to exit on the same topic, model, machine and Qdrant server:

- ours: `vectorstream run --ending_offsets latest` (the events collection only, as the
  hand-written consumer writes it: `--products off --profiles off`);
- plain: the hand-written consumer (`vectorstream.bench.plain`).

Each: wall time (command start to exit, start-up included), the time to its first record
polled (ours: from its start-up timeline), events stored (read back), CPU time of it and
every process it waited for, and the server's CPU beside it. Each command starts once
the server has indexed what the last one stored (every collection green), so neither
shares the cores with the server's indexing of the other's points.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List


def timed(argv: List[str], env=None) -> Dict:
    """Runs a command; returns rc, wall s, CPU s (it and what it waited for), and the tail
    of its output."""
    started = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    out: List[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(10)
    return {"rc": proc.returncode, "wall_s": round(time.time() - started, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "output": "".join(out)}


def run_commands(spec: Dict, work: str) -> Dict:
    from vectorstream.bench.measure import listening_pid, process_cpu_seconds, server_settled
    from vectorstream.io.qdrant import open_store
    url, events = spec["qdrant_url"], spec["events"]
    server = listening_pid(url)
    grpc = ["--qdrant_grpc_port", str(spec["grpc_port"])] if spec.get("grpc_port") else []
    model = ["--model", spec["model"]] if spec.get("model") else []
    commands = {
        "ours": [sys.executable, "-m", "vectorstream", "run", "--ending_offsets", "latest",
                 "--bootstrap_servers", spec["bootstrap"], "--topic", spec["topic"],
                 "--consumer_group", f"ours-{spec['run_id']}", "--qdrant_url", url, *grpc,
                 "--collection", f"{spec['collection']}-ours", "--products", "off",
                 "--profiles", "off", "--progress_seconds", "0", "--timeline",
                 "--dead_letter_path", os.path.join(work, "dead.jsonl"), "--device",
                 spec["device"], *model, *spec.get("ours_flags", [])],
        "plain": [sys.executable, "-m", "vectorstream.bench.plain", "--bootstrap_servers",
                  spec["bootstrap"], "--topic", spec["topic"], "--group",
                  f"plain-{spec['run_id']}", "--qdrant_url", url, "--grpc_port",
                  str(spec.get("grpc_port") or 6334), "--collection",
                  f"{spec['collection']}-plain", "--device", spec["device"], *model],
    }
    report = {"order": ["plain", "ours"] if spec.get("plain_first") else ["ours", "plain"]}
    for name in report["order"]:
        argv = commands[name]
        waited = server_settled(url)  # the server done indexing the last run's points
        print(f"bench: running {name} (a command, start to exit; the server settled in "
              f"{waited} s) …", file=sys.stderr)
        before = process_cpu_seconds(server)
        result = timed(argv)
        after = process_cpu_seconds(server)
        # The index the run leaves to build (all of it, when it deferred indexing): how
        # long after the command's exit, and the server's CPU for all of it.
        indexed = server_settled(url)
        after_indexed = process_cpu_seconds(server)
        store = open_store(url=url, grpc_port=spec.get("grpc_port"))
        try:
            collection = commands[name][commands[name].index("--collection") + 1]
            stored = store.count(collection) if store.exists(collection) else 0
        finally:
            store.close()
        row = {"command": " ".join(a for a in argv[1:]), "rc": result["rc"],
               "wall_s": result["wall_s"], "stored": stored,
               "events_per_s_wall": round(stored / result["wall_s"], 1) if stored else None,
               "cpu_s": result["cpu_s"],
               "us_per_event": round(result["cpu_s"] / stored * 1e6, 1) if stored else None,
               "server_us_per_event": (round((after - before) / stored * 1e6, 1)
                                       if stored and after is not None else None),
               "indexed_s_after_exit": indexed,
               "server_us_per_event_indexed": (
                   round((after_indexed - before) / stored * 1e6, 1)
                   if stored and after_indexed is not None else None)}
        row.update(_startup(name, result["output"]))
        if result["rc"] != 0:
            row["error"] = result["output"][-2000:]
            print(f"bench: {name} failed (rc {result['rc']}):\n{row['error']}", file=sys.stderr)
        report[name] = row
    if report["ours"]["wall_s"] and report["plain"]["wall_s"]:
        report["speedup"] = round(report["plain"]["wall_s"] / report["ours"]["wall_s"], 2)
    report["stored_all"] = all(report[n]["stored"] == events for n in commands)
    report["order"] = " then ".join(report["order"])
    return report


def _startup(name: str, output: str) -> Dict:
    """The time to the first record polled, and ours' start-up timeline."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if name == "plain" and line.startswith("{") and '"startup_s"' in line:
            return {"startup_s": json.loads(line)["startup_s"]}
        if name == "ours" and line.startswith("timeline:"):
            timeline = json.loads(line[len("timeline:"):])
            return {"startup_s": timeline.get("first record polled"), "timeline": timeline}
    return {}


def table(report: Dict) -> str:
    lines = [f"{report['workload']} · {report['events']} events · {report['machine']} · "
             f"{report['date']}", f"{'':26} {'ours':>12} {'plain':>12}"]
    for label, key in (("wall s (start to exit)", "wall_s"), ("stored", "stored"),
                       ("events/s (wall)", "events_per_s_wall"),
                       ("first record polled (s)", "startup_s"),
                       ("CPU µs/event", "us_per_event"),
                       ("server CPU µs/event", "server_us_per_event"),
                       ("indexed, s after exit", "indexed_s_after_exit"),
                       ("server CPU µs/ev. indexed", "server_us_per_event_indexed")):
        lines.append(f"{label:26} " + " ".join(
            f"{str(report[w].get(key, '-')):>12}" for w in ("ours", "plain")))
    if "speedup" in report:
        lines.append(f"ours ÷ plain (plain's wall / ours'): {report['speedup']}×"
                     + (f" ({report['order']})" if report.get("order") else ""))
    timeline = report["ours"].get("timeline")
    if timeline:
        lines.append("ours' start-up: " + ", ".join(f"{k} {v} s" for k, v in timeline.items()))
    return "\n".join(lines)
