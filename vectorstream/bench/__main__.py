"""`python -m vectorstream.bench child ours|stock|store_alone SPEC.json`: one pipeline of a
benchmark run (`vectorstream bench` starts these)."""
import os
import sys

from vectorstream.bench.child import run_child, run_store_alone

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1:3] == ["child", "store_alone"]:
        run_store_alone(sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "child":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if os.environ.get("VECTORSTREAM_BENCH_PROFILE"):  # where the CPU time goes
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            profiler.runcall(run_child, sys.argv[2], sys.argv[3])
            profiler.dump_stats(sys.argv[3] + ".prof")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        else:
            run_child(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m vectorstream.bench child ours|stock SPEC.json "
                 "(use `vectorstream bench` instead)")
