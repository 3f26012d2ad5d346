"""The PNG beside a benchmark report."""
from __future__ import annotations

from typing import Dict


def chart(report: Dict, path: str) -> bool:
    """A PNG beside the report: events/s, p99 latency and peak RSS, ours vs stock."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    which = [w for w in ("ours", "stock") if w in report]
    own = report.get("ours_less_store_growth")
    fig, axes = plt.subplots(1, 4 if own else 3, figsize=(13.5 if own else 10, 3.4))
    if own:
        # Memory over the run: ours, and ours less what the store alone grew by.
        ax, minutes = axes[3], [i / 6 for i in range(len(own["rss_mb"]))]
        ax.plot(minutes, report["ours"]["rss_mb_every_10s"], label="ours RSS")
        ax.plot(minutes, own["rss_mb"], label="ours less store growth")
        ax.plot(minutes, own["rss_anon_mb"], label="  same, anonymous")
        ax.set_title("memory (MB)")
        ax.set_xlabel("minutes")
        ax.legend(fontsize=7)
    for ax, (label, key) in zip(axes, [("events/s", "events_per_s"),
                                       ("latency p99 (s)", "latency_p99_s"),
                                       ("peak RSS (MB)", "peak_rss_mb")]):
        values = [report[w].get(key) or 0 for w in which]
        bars = ax.bar(which, values, color=["#2a7ab0", "#b0b0b0"][:len(which)])
        ax.bar_label(bars, fmt="%g")
        ax.set_title(label)
        ax.margins(y=0.2)
    fig.suptitle(f"vectorstream bench: {report['workload']}, {report['events']} events, "
                 f"{report['device']} ({report['machine'].get('gpu') or 'CPU'}), "
                 f"{report['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
