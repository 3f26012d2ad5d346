"""`vectorstream kafka` and `vectorstream flink`: the local services (a Kafka broker, a
Flink cluster), and cancelling Flink jobs."""
from __future__ import annotations

from vectorstream.cli.common import CliError


def cmd_kafka(args, extra) -> int:
    from vectorstream.io.local_kafka import LocalKafka
    broker = LocalKafka(args.data_dir, port=args.port)
    if args.action == "start":
        print(f"Kafka running at {broker.start()}")
    elif args.action == "stop":
        print("stopped" if broker.stop() else "no broker started from here was running")
    else:
        print(broker.status())
    return 0


def cmd_flink(args, extra) -> int:
    from vectorstream.runners import flink
    cluster = flink.LocalFlink(args.data_dir, port=args.port, taskmanagers=args.taskmanagers,
                               slots=args.slots, worker_pool_port=args.worker_pool_port)
    if args.action == "start":
        address = cluster.start()
        print(f"Flink running at {address} ({args.taskmanagers} task managers, "
              f"{args.slots} slots each); Python worker pool at {cluster.worker_pool}; "
              f"submit with `vectorstream run --preset flink`")
    elif args.action == "stop":
        print("stopped" if cluster.stop() else "no Flink cluster started from here was running")
    elif args.action == "cancel":
        master = args.flink_master or cluster.master
        try:
            ids = flink.cancel_jobs(master, name=args.job_name, job_id=args.job)
        except OSError as exc:
            raise CliError(f"Flink at {master} does not answer ({exc}): check --flink_master")
        if ids:
            flink.wait_for_jobs_to_end(master, ids)
        print(f"cancelled {len(ids)} job(s){': ' + ', '.join(ids) if ids else ''}")
    else:
        print(cluster.status())
    return 0


def register(sub) -> None:
    p = sub.add_parser("kafka", help="Start, stop or check the local Kafka broker.")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--data_dir", default="./data/kafka")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("flink", help="Start, stop or check a local Flink cluster (a job "
                                      "manager, task managers and a Python worker pool), "
                                      "or cancel running jobs.")
    p.add_argument("action", choices=("start", "stop", "status", "cancel"))
    p.add_argument("--data_dir", default="./data/flink",
                   help="Configuration, logs and checkpoints of the local cluster.")
    p.add_argument("--port", type=int, default=8081, help="REST port of the job manager.")
    p.add_argument("--taskmanagers", type=int, default=2)
    p.add_argument("--slots", type=int, default=2, help="Task slots per task manager.")
    p.add_argument("--worker_pool_port", type=int, default=50000,
                   help="Port of the Python SDK worker pool (the flink preset's "
                        "--environment_config).")
    p.add_argument("--flink_master", default=None,
                   help="cancel: the cluster's REST address (default: the local one).")
    p.add_argument("--job", default=None, help="cancel: only this job id.")
    p.add_argument("--job_name", default=None, help="cancel: only jobs of this name.")
    p.set_defaults(func=cmd_flink)
