"""`vectorstream run` (the pipeline; `--explain` prints its plan) and `vectorstream presets`."""
from __future__ import annotations

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
    return 0


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
