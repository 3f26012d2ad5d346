"""`vectorstream run` (the pipeline; `--explain` prints its plan) and `vectorstream presets`."""
from __future__ import annotations

import sys
from typing import List


def cmd_run(args, extra: List[str]) -> int:
    if "-h" in extra or "--help" in extra:
        from vectorstream.config.options import help_text
        print(help_text())
        return 0
    from vectorstream.pipeline.plan import resolve
    plan = resolve([a for a in extra if a != "--explain"])
    if "--explain" in extra:
        print(plan.explain())
        return 0
    from vectorstream.pipeline.early import start_model_loading
    start_model_loading(plan)  # loads while the launcher (Beam's RunInference, torch) imports
    from vectorstream.pipeline.launch import counters, execute
    result = execute(plan)
    found = counters(result)
    if found:
        print(" ".join(f"{k}={v}" for k, v in sorted(found.items())))
    global FINISHED  # pylint: disable=global-statement
    FINISHED = True
    return 0


# A run that has finished: everything it wrote is acknowledged (points by the store,
# offsets by Kafka, synchronously; dead letters flushed, and fsynced when a file), so the
# command may end without the interpreter's teardown (`exit_process`).
FINISHED = False


def exit_process(code: int) -> None:
    """Ends the `vectorstream` command with `code`. After a finished run, as the interpreter
    would but for its last step: the atexit handlers run (Kafka's committers closed,
    Beam's subprocesses stopped, logging flushed), then stdout and stderr are flushed and
    the process exits without tearing down every module and object a Beam pipeline
    loaded (0.6-0.7 s here). Not while another thread must be waited for, and not after
    any other command: those exit as usual."""
    import threading
    others = [t for t in threading.enumerate()
              if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if not FINISHED or others:
        sys.exit(code)
    import atexit
    import os
    atexit._run_exitfuncs()  # pylint: disable=protected-access
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)  # pylint: disable=protected-access


def cmd_presets(args, extra) -> int:
    from vectorstream.config.presets import describe_presets
    print(describe_presets())
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", add_help=False,
                       help="Run the pipeline (`vectorstream run --help` lists its flags; "
                            "`--explain` prints the run plan without running it).")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("presets", help="The runner presets (`run --preset NAME`), each "
                                        "with a copy-paste command.")
    p.set_defaults(func=cmd_presets)
