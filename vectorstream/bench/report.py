"""The report of a benchmark run: the table, the store's share, the pipeline's own memory."""
from __future__ import annotations

from typing import Dict, Optional


def store_share(report: Dict) -> Optional[Dict]:
    """How much of ours' CPU per event is the store's: an embedded store's from the
    store-alone run (its upserts' CPU per point), a local server's from its own process."""
    ours = report.get("ours") or {}
    if not ours.get("us_per_event"):
        return None
    alone = (report.get("store_alone") or {}).get("us_per_point")
    if alone:
        return {"store_us_per_event": alone,
                "ours_less_store_us_per_event": round(ours["us_per_event"] - alone, 1),
                "store_share": round(alone / ours["us_per_event"], 3)}
    if ours.get("server_us_per_event") is not None:
        total = ours["us_per_event"] + ours["server_us_per_event"]
        return {"store_us_per_event": ours["server_us_per_event"],
                "ours_less_store_us_per_event": ours["us_per_event"],
                "store_share": round(ours["server_us_per_event"] / total, 3)}
    return None


def own_memory(report: Dict) -> Optional[Dict]:
    """Ours' memory less what the store alone grew by at the same number of points
    (interpolated), at each 10-s sample: the pipeline's own memory, in all and anonymous.
    Flat means the process grows only by what its embedded store keeps."""
    ours, alone = report.get("ours"), report.get("store_alone")
    if not ours or not alone or not ours.get("stored_every_10s"):
        return None

    import numpy as np

    def growth(key, points):
        return float(np.interp(points, alone["points"], alone[key])) - alone[key][0]

    out = {"rss_mb": [], "rss_anon_mb": []}
    for points, total, anon in zip(ours["stored_every_10s"], ours["rss_mb_every_10s"],
                                   ours["rss_anon_mb_every_10s"]):
        out["rss_mb"].append(round(total - growth("rss_mb", points), 1))
        out["rss_anon_mb"].append(round(anon - growth("rss_anon_mb", points), 1))
    return out


ROWS = [("events", "events"), ("events/s", "events_per_s"),
        ("CPU µs/event", "us_per_event"), ("server CPU µs/event", "server_us_per_event"),
        ("2nd half events/s", "second_half_events_per_s"), ("latency p50 (s)", "latency_p50_s"),
        ("latency p99 (s)", "latency_p99_s"), ("peak RSS (MB)", "peak_rss_mb"),
        ("stored", "stored"), ("start-up (s)", "startup_s"),
        ("GPU util mean (%)", "gpu_util_mean_pct")]


def table(report: Dict) -> str:
    lines = [f"{report['workload']} · {report['events']} events · {report['device']} · "
             f"{report['machine'].get('gpu') or str(report['machine']['cpus']) + ' CPUs'}",
             f"{'':20} {'ours':>12} {'stock':>12}"]
    for label, key in ROWS:
        values = [report.get(w, {}).get(key) for w in ("ours", "stock")]
        if all(v is None for v in values):
            continue
        lines.append(f"{label:20} " + " ".join(f"{'-' if v is None else v:>12}" for v in values))
    if "speedup" in report:
        lines.append(f"ours / stock events/s: {report['speedup']}×")
    share = report.get("store_share")
    if share:
        lines.append(f"ours' CPU µs/event less the store's: "
                     f"{share['ours_less_store_us_per_event']:g} (the store: "
                     f"{share['store_us_per_event']:g} µs/event, "
                     f"{100 * share['store_share']:.0f} % of the whole)")
    own = report.get("ours_less_store_growth")
    if own and own["rss_mb"]:
        lines.append(f"ours' memory less the store's growth (MB, in all / anonymous): "
                     f"first {own['rss_mb'][0]:g} / {own['rss_anon_mb'][0]:g}, last "
                     f"{own['rss_mb'][-1]:g} / {own['rss_anon_mb'][-1]:g}, range "
                     f"{min(own['rss_mb']):g}–{max(own['rss_mb']):g} / "
                     f"{min(own['rss_anon_mb']):g}–{max(own['rss_anon_mb']):g}")
    return "\n".join(lines)
