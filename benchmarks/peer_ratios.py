"""The table of one side-by-side sitting (benchmarks/peer_sitting.sh): each round's images/s
on both sides, their ratio, and the median ratio over the rounds; then both matmul rates.

  python benchmarks/peer_ratios.py sitting/
"""

import glob
import json
import os
import re
import statistics
import sys

# (row label, our file and part, the peer's file)
ROWS = (
    ("w16 b256, no augmentation", ("w16", "train_step"), "w16_none"),
    ("w16 b256, augmentation in the loop", ("w16", "augmented_step"), "w16_kornia"),
    ("w64 b256, no augmentation", ("w64", "train_step"), "w64_none"),
    ("w64 b256, augmentation in the loop", ("w64", "augmented_step"), "w64_kornia"),
)


def _json(path: str) -> dict:
    with open(path) as f:
        text = f.read().strip()
    try:  # our benchmark writes one JSON document
        return json.loads(text)
    except json.JSONDecodeError:  # the peer's JSON line is the last of its stdout
        return json.loads(text.splitlines()[-1])


def rounds(out: str) -> list[int]:
    names = glob.glob(os.path.join(out, "r*_ours_w16.json"))
    return sorted(int(re.search(r"r(\d+)_", os.path.basename(n)).group(1)) for n in names)


def table(out: str) -> str:
    rs = rounds(out)
    if not rs:
        raise SystemExit(f"no rounds in {out}")
    lines = [
        "| | peer (rounds) | ours (rounds) | ratios | median |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, (ours_file, part), peer_file in ROWS:
        peer = [_json(os.path.join(out, f"r{r}_peer_{peer_file}.json"))["img_per_s"] for r in rs]
        ours = [
            _json(os.path.join(out, f"r{r}_ours_{ours_file}.json"))[part]["images_per_s"]
            for r in rs
        ]
        ratios = [o / p for o, p in zip(ours, peer, strict=True)]
        lines.append(
            f"| {label} (img/s) | {', '.join(f'{p:.1f}' for p in peer)} "
            f"| {', '.join(f'{o:.1f}' for o in ours)} "
            f"| {', '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}×** |"
        )
    eigen = [os.path.join(out, f"r{r}_ours_w16_eigen.json") for r in rs]
    if all(os.path.exists(p) for p in eigen):
        slow = [_json(p)["train_step"]["images_per_s"] for p in eigen]
        fast = [
            _json(os.path.join(out, f"r{r}_ours_w16.json"))["train_step"]["images_per_s"]
            for r in rs
        ]
        gains = [f / e for f, e in zip(fast, slow, strict=True)]
        lines.append(
            f"| ours w16 b256, oneDNN / TF's Eigen kernels (img/s) | "
            f"{', '.join(f'{e:.1f}' for e in slow)} (Eigen) | {', '.join(f'{f:.1f}' for f in fast)} "
            f"| {', '.join(f'{g:.2f}' for g in gains)} | **{statistics.median(gains):.2f}×** |"
        )
    rates = []
    for when in ("before", "after"):
        peer_path = os.path.join(out, f"peer_matmul_{when}.json")
        ours_path = os.path.join(out, f"ours_matmul_{when}.json")
        if os.path.exists(peer_path) and os.path.exists(ours_path):
            rates.append(
                f"{when}: torch {_json(peer_path)['gflops_median']:.1f}, "
                f"TF {_json(ours_path)['matmul']['median_gflops']:.1f}"
            )
    machine = _json(os.path.join(out, f"r{rs[0]}_ours_w16.json"))["machine"]
    lines += ["", "float32 matmul GFLOP/s, " + "; ".join(rates), "", f"machine: {machine}"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1]))
