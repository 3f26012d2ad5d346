"""The parent of a benchmark run: the workload, one child process per pipeline, the report."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict


from vectorstream.bench.charts import chart
from vectorstream.bench.measure import GpuSampler, machine
from vectorstream.bench.report import own_memory, store_share, table
from vectorstream.bench.workloads import COLLECTION, workload_messages
from vectorstream.config.options import UsageError


def run_bench(args) -> Dict:
    from vectorstream.transforms.model import choose_model
    from vectorstream.transforms.model import resolve_device
    model = choose_model(args.model)
    device = resolve_device(args.device)
    work = tempfile.mkdtemp(prefix="vectorstream-bench-")
    print(f"bench: {args.workload}, {args.events} events, {device}, source {args.source}, "
          f"work dir {work}", file=sys.stderr)
    if args.baseline == "plain" and not args.qdrant_url:
        raise UsageError("--baseline plain writes with qdrant-client over gRPC, as a user's "
                         "consumer would: give --qdrant_url (a Qdrant server)")
    if args.baseline == "plain" and args.source != "kafka":
        raise UsageError("--baseline plain reads Kafka: leave --source kafka")
    messages = workload_messages(args.workload, args.events, catalog_size=args.products)
    run_id = uuid.uuid4().hex[:8]
    ours_flags = list(args.ours_flag or [])
    if device == "cuda" and not args.ours_flag:
        # As the GPU preset ships: big batches through the pipeline and the model.
        ours_flags = ["--batch_events=4096", "--inference_batch_size=512"]
    spec = {"events": args.events, "model": args.model, "model_path": model.path,
            "dim": model.dim, "device": args.device, "source": args.source,
            "store": args.store, "topic": f"bench-{args.workload}-{run_id}",
            "bootstrap": args.bootstrap_servers, "ours_flags": ours_flags,
            "qdrant_url": args.qdrant_url, "grpc_port": args.qdrant_grpc_port,
            "collection": f"bench-{run_id}" if args.qdrant_url else COLLECTION}
    if args.source == "kafka":
        from vectorstream.io.kafka_admin import check_reachable, ensure_topic
        from vectorstream.io.produce import produce
        check_reachable(args.bootstrap_servers)
        ensure_topic(args.bootstrap_servers, spec["topic"], partitions=args.partitions)
        produce(args.bootstrap_servers, spec["topic"], messages)
    if args.source == "memory" or args.store_alone:
        spec["messages"] = os.path.join(work, "messages.pickle")
        with open(spec["messages"], "wb") as fh:
            pickle.dump(messages, fh)
    del messages
    if args.baseline == "plain":
        from vectorstream.bench.commands import run_commands
        spec["run_id"] = run_id
        spec["plain_first"] = args.plain_first
        report = run_commands(spec, work)
        report.update(workload=args.workload, events=args.events, device=device,
                      model=model.name, products=args.products, partitions=args.partitions,
                      store=f"Qdrant server at {args.qdrant_url}", baseline="plain",
                      date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      machine=machine(), command=" ".join(["vectorstream", "bench"]
                                                          + args.argv))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return report
    report = {"workload": args.workload, "events": args.events, "device": device,
              "source": ("Kafka (local broker, " f"{args.partitions} partitions)"
                         if args.source == "kafka" else
                         "pre-encoded messages in memory through the same parsing code "
                         "(no Kafka on this machine)"),
              "model": model.name, "ours_flags": ours_flags,
              "store": {
                  "ours": (f"Qdrant server at {args.qdrant_url}" if args.qdrant_url else
                           "Qdrant Edge (embedded shard)" if args.store == "edge"
                           else "qdrant-client local mode"),
                  "stock": (f"Qdrant server at {args.qdrant_url}" if args.qdrant_url else
                            "qdrant-client local mode") + " (Beam's QdrantWriteConfig)"},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "command": " ".join(["vectorstream", "bench"] + args.argv)}
    sampler = GpuSampler() if device == "cuda" and shutil.which("nvidia-smi") else None
    if sampler:
        sampler.start()
    for which in ("ours", "stock", "store_alone"):
        if ((which == "stock" and args.skip_stock) or (which == "ours" and args.skip_ours)
                or (which == "store_alone" and not args.store_alone)):
            continue
        run_spec = dict(spec, dir=os.path.join(work, which), group=f"bench-{which}-{run_id}")
        if which == "stock" and args.stock_events:
            run_spec["events"] = min(args.stock_events, args.events)
        os.makedirs(run_spec["dir"])
        spec_path = os.path.join(run_spec["dir"], "spec.json")
        with open(spec_path, "w") as fh:
            json.dump(run_spec, fh)
        print(f"bench: running {which} …", file=sys.stderr)
        log_path = os.path.join(run_spec["dir"], "log.txt")
        with open(log_path, "w") as log:
            proc = subprocess.run([sys.executable, "-m", "vectorstream.bench", "child", which,
                                   spec_path], stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            with open(log_path) as fh:
                tail = fh.read()[-3000:]
            raise RuntimeError(f"the {which} pipeline failed (exit {proc.returncode}); "
                               f"the end of its log ({log_path}):\n{tail}")
        with open(os.path.join(run_spec["dir"], f"{which}.json")) as fh:
            result = json.load(fh)
        if sampler and which != "store_alone":
            gpu = sampler.summary(result["first_read"], result["last_stored"])
            if gpu:
                result.update(gpu)
        report[which] = result
    if sampler:
        sampler.stop()
    if "stock" in report and "ours" in report and report["stock"]["events_per_s"]:
        report["speedup"] = round(report["ours"]["events_per_s"]
                                  / report["stock"]["events_per_s"], 2)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main_bench(args) -> int:
    if args.chart_only:
        with open(args.report) as fh:
            report = json.load(fh)
    else:
        if args.events <= 0:
            raise UsageError("--events must be positive")
        report = run_bench(args)
    if report.get("baseline") == "plain":
        from vectorstream.bench.commands import table as commands_table
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"report: {args.report}")
        report["machine"] = f"{report['machine'].get('cpus')} CPUs"
        print(commands_table(report))
        return 0 if report["stored_all"] else 1
    own = own_memory(report)
    if own:
        report["ours_less_store_growth"] = own
    share = store_share(report)
    if share:
        report["store_share"] = share
    if not args.chart_only:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=2)
    png = os.path.splitext(args.report)[0] + ".png"
    if chart(report, png):
        print(f"chart: {png}")
    else:
        print("chart: matplotlib is not installed here; draw it elsewhere with "
              f"`vectorstream bench --chart_only --report {args.report}`")
    print(f"report: {args.report}")
    print(table(report))
    short = [(side, report[side]["stored"], report[side]["events"])
             for side in ("ours", "stock") if isinstance(report.get(side), dict)
             and report[side].get("stored", 0) < report[side].get("events", 0)]
    for side, stored, want in short:
        print(f"bench: {side} stored {stored} of {want} events: the run lost events, so "
              f"its numbers are not a measurement", file=sys.stderr)
    return 1 if short else 0
