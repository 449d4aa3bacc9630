"""benchmarks/peer_ratios.py: each round's ratio and the median, from both libraries' files."""

import json

from benchmarks import peer_ratios


def _write(path, obj, as_line=False):
    path.write_text(
        ("progress on stdout\n" + json.dumps(obj)) if as_line else json.dumps(obj, indent=2)
    )


def test_table_gives_each_rounds_ratio_and_their_median(tmp_path):
    ours = {
        1: (300.0, 290.0, 30.0, 28.0),
        2: (330.0, 300.0, 33.0, 30.0),
        3: (270.0, 250.0, 27.0, 26.0),
    }
    for r, (w16, w16_aug, w64, w64_aug) in ours.items():
        machine = {"cpu_vector_isa": "avx2"}
        _write(
            tmp_path / f"r{r}_ours_w16.json",
            {
                "machine": machine,
                "train_step": {"images_per_s": w16},
                "augmented_step": {"images_per_s": w16_aug},
            },
        )
        _write(
            tmp_path / f"r{r}_ours_w64.json",
            {
                "machine": machine,
                "train_step": {"images_per_s": w64},
                "augmented_step": {"images_per_s": w64_aug},
            },
        )
        for name in ("w16_none", "w16_kornia", "w64_none", "w64_kornia"):
            peer = 100.0 if name.startswith("w16") else 10.0
            _write(
                tmp_path / f"r{r}_peer_{name}.json",
                {"mode": "byol", "img_per_s": peer},
                as_line=True,
            )
    _write(
        tmp_path / "peer_matmul_before.json",
        {"mode": "matmul", "gflops_median": 80.0},
        as_line=True,
    )
    _write(tmp_path / "ours_matmul_before.json", {"matmul": {"median_gflops": 160.0}})
    table = peer_ratios.table(str(tmp_path))
    rows = {
        line.split(" |")[0].lstrip("| "): line
        for line in table.splitlines()
        if line.startswith("| w")
    }
    # w16 without augmentation: 3.00, 3.30, 2.70 -> median 3.00
    assert "3.00, 3.30, 2.70 | **3.00×**" in rows["w16 b256, no augmentation (img/s)"]
    assert "**2.90×**" in rows["w16 b256, augmentation in the loop (img/s)"]
    assert "**3.00×**" in rows["w64 b256, no augmentation (img/s)"]
    assert "before: torch 80.0, TF 160.0" in table and "'cpu_vector_isa': 'avx2'" in table
