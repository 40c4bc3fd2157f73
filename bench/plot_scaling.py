"""Log–log scaling plot of time and peak memory against N for siting and spopt (from results.json).

    python bench/plot_scaling.py [--results bench/results.json] [--out bench/figures/scaling.png]

One line per (tool, problem), default variant, HiGHS, the latest run of each size. spopt's issue-8
out-of-memory point at 200k × 20k (13.3 GiB dense array, not run here) is drawn as a cross.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
STYLE = {"siting": {"color": "tab:blue", "marker": "o"}, "spopt": {"color": "tab:red", "marker": "s"}}
LINE = {"lscp": "-", "mclp": "--", "full": ":", "full-network": "-.", "full-budget": (0, (1, 3))}
FULL_LIMIT_S = 60.0  # the time limit of issue 8's full-model targets
MARK = {"full": "^", "full-network": "v", "full-budget": "D"}


def latest(records: list[dict], solver: str = "highs") -> dict[tuple[str, str], list[dict]]:
    """(tool, problem) → records sorted by N: the latest finished run per N, default variant, one solver
    (full models: runs at the 60 s limit only)."""
    best: dict[tuple[str, str, int], dict] = {}
    for r in records:
        if (r.get("variant") != "default" or r.get("solver") != solver or r.get("t_total") is None
                or r.get("peak_mb") is None):
            continue
        if r["problem"].startswith("full") and r.get("time_limit") != FULL_LIMIT_S:
            continue  # full-model points are comparable only at the 60 s limit
        key = (r["tool"], r["problem"], r["n"])
        if key not in best or r["run_id"] > best[key]["run_id"]:
            best[key] = r
    out: dict[tuple[str, str], list[dict]] = {}
    for (tool, prob, _), r in sorted(best.items(), key=lambda kv: kv[0][2]):
        out.setdefault((tool, prob), []).append(r)
    return out


def plot(records: list[dict], path: Path) -> Path:
    series = latest(records)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(14, 4.8))
    for (tool, prob), rs in sorted(series.items()):
        n = [r["n"] for r in rs]
        kw = {**STYLE.get(tool, {}), "linestyle": LINE.get(prob, "-"), "label": f"{tool} {prob.upper()}"}
        if prob in MARK:
            kw.update(marker=MARK[prob], label=f"{tool} {prob} (status {rs[-1]['status']})")
        ax_t.plot(n, [r["t_total"] for r in rs], **kw)
        ax_m.plot(n, [r["peak_mb"] / 1024 for r in rs], **kw)
    ax_m.scatter([200_000], [13.3], marker="x", s=80, color="tab:red", zorder=5,
                 label="spopt LSCP 200k: OOM (13.3 GiB array, issue 8)")
    for ax, label in ((ax_t, "wall time, reach + build + solve (s)"), (ax_m, "peak resident memory (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("demand cells N (candidates M = N/10)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title("Time against N")
    ax_m.set_title("Peak memory against N")
    ax_m.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("siting vs spopt 0.7 on the synthetic cities (2 cores, shared machine)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    ap.add_argument("--out", type=Path, default=HERE / "figures" / "scaling.png")
    a = ap.parse_args(argv)
    print(plot(json.loads(a.results.read_text()), a.out))


if __name__ == "__main__":
    main()
