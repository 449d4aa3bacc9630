"""tools/plot_metrics.py: curves from metrics.jsonl to a PNG, kNN panel only when logged."""

import json
import os
import struct
import subprocess
import sys

import pytest

from byol_tf.training import plotting
from tests import REPO


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def write_metrics(path, with_knn: bool):
    records = []
    for step in range(4, 41, 4):
        records.append({"step": step, "epoch": step / 4, "loss": 4.0 / step, "collapse_std": 0.9})
        if with_knn and step % 8 == 0:
            records.append(
                {"step": step, "epoch": step / 4, "knn_top1": step / 50, "knn_top5": 0.9}
            )
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(r) for r in records) + "\n")
        f.write('{"step": 44, "loss"')  # a run killed mid-line
    return records


def test_series_and_panels(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_metrics(path, with_knn=True)
    records = plotting.read_metrics(str(path))
    # One record per step (the kNN records merged in); the half-written line is skipped.
    assert [r["step"] for r in records] == list(range(4, 41, 4))
    assert records[1]["loss"] == 0.5 and records[1]["knn_top1"] == 0.16
    epochs, top1 = plotting.series(records, "knn_top1")
    assert epochs == [2.0, 4.0, 6.0, 8.0, 10.0] and top1 == [0.16, 0.32, 0.48, 0.64, 0.8]
    with_knn = png_size(plotting.plot_metrics(records, str(tmp_path / "a.png")))
    write_metrics(path, with_knn=False)
    without = png_size(
        plotting.plot_metrics(plotting.read_metrics(str(path)), str(tmp_path / "b.png"))
    )
    # Three panels (loss, kNN, collapse_std) against two: the figure is taller by one panel.
    assert with_knn[0] == without[0] and with_knn[1] == pytest.approx(1.5 * without[1], rel=0.01)


def test_online_probe_panel(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = write_metrics(path, with_knn=False)
    without = png_size(plotting.plot_metrics(records, str(tmp_path / "a.png")))
    for r in records:
        r["probe_top1"] = r["step"] / 50
    epochs, top1 = plotting.series(records, "probe_top1")
    assert len(epochs) == 10 and top1[0] == 0.08
    with_probe = png_size(plotting.plot_metrics(records, str(tmp_path / "b.png")))
    # Loss, probe and collapse_std panels against loss and collapse_std.
    assert with_probe[1] == pytest.approx(1.5 * without[1], rel=0.01)


def test_missing_metrics_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="byol-tf workdir"):
        plotting.read_metrics(str(tmp_path / "metrics.jsonl"))


def test_cli(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl", with_knn=True)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "plot_metrics.py"), f"--workdir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert png_size(tmp_path / "metrics.png")[0] > 0
    assert "Plotted 10 logged steps" in result.stdout
