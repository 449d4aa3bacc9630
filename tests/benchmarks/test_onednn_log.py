"""The oneDNN verbose log totals: parsing both libraries' lines, FLOPs, subtraction."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.bench import onednn_log
from tests import REPO

# As TensorFlow 2.21 (oneDNN 3.7) and torch 2.13 (oneDNN 3.12) print them.
CONV_TF = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,"
    "src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb64a::f0 bia:undef::undef::: "
    "dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,"
    "mb256_ic64oc64_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1,40.0"
)
CONV_TORCH_BWD = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,backward_weights,"
    "src:f32:a:blocked:aBcd16b::f0 diff_wei:f32:a:blocked:ABcd16a16b::f0 bia:undef::undef::: "
    "diff_dst:f32:a:blocked:aBcd16b::f0,attr-scratchpad:user,alg:convolution_direct,"
    "mb512_ic128oc256_ih16oh8kh1sh2dh0ph0_iw16ow8kw1sw2dw0pw0,2.0"
)
REORDER = (
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:cdba::f0 "
    "dst:f32::blocked:Acdb64a::f0,,,64x3x3x3,0.6"
)
OTHER = [
    "onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)",
    "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,x,forward_training,,,,"
    "mb1_ic1oc1_ih1oh1kh1sh1dh0ph0_iw1ow1kw1sw1dw0pw0,0.1",
    '{"images_per_s": 45.0}',
]


GRAPH = (
    "onednn_verbose,v1,graph,exec,cpu,100002,sdp,matmul;softmax,,in0_f32:0:strided:undef:1x2,"
    "strict,dnnl_backend,1.5"
)


def records(lines):
    parsed, broken = onednn_log.exec_records(lines)
    assert broken == 0
    return parsed


def test_records_are_the_primitive_exec_lines_of_either_library():
    parsed = records([CONV_TF, *OTHER, GRAPH, CONV_TORCH_BWD, REORDER])
    assert [(r["kind"], r["propagation"], r["ms"]) for r in parsed] == [
        ("convolution", "forward_training", 40.0),
        ("convolution", "backward_weights", 2.0),
        ("reorder", "undef", 0.6),
    ]
    assert parsed[0]["implementation"] == "brg_conv_fwd:avx512_core"


def test_lines_cut_short_are_counted_not_fatal():
    cut = CONV_TF[: CONV_TF.index("mb256")] + "mb256_ic64oc64_ih3"
    parsed, broken = onednn_log.exec_records(
        [CONV_TF, cut, "onednn_verbose,v1,primitive,exec,cpu", REORDER]
    )
    assert [r["kind"] for r in parsed] == ["convolution", "reorder"]
    assert broken == 2


@pytest.mark.parametrize(
    "problem, flop",
    [
        # 2 * batch * out_c * in_c * out_h * out_w * k_h * k_w
        ("mb256_ic64oc64_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1", 2 * 256 * 64 * 64 * 32**2 * 9),
        ("mb512_ic128oc256_ih16oh8kh1sh2dh0ph0_iw16ow8kw1sw2dw0pw0", 2 * 512 * 256 * 128 * 8**2),
        # Grouped: each output channel sees in_c / groups inputs.
        ("mb2_g4ic8oc4_ih5oh5kh3sh1dh0ph1_iw5ow5kw3sw1dw0pw1", 2 * 2 * 4 * 2 * 25 * 9),
        # 3-D.
        (
            "mb1_ic2oc3_id4od4kd3sd1dd0pd1_ih4oh4kh3sh1dh0ph1_iw4ow4kw3sw1dw0pw1",
            2 * 3 * 2 * 64 * 27,
        ),
    ],
)
def test_convolution_flop(problem, flop):
    assert onednn_log.convolution_flop(problem) == flop


def test_summary_totals_rates_and_subtraction():
    long = records([CONV_TF, CONV_TF, CONV_TORCH_BWD, REORDER, REORDER])
    short = records([CONV_TF, REORDER])
    summary = onednn_log.summarize(long, minus=short)
    assert summary["total_ms"] == pytest.approx(40.0 + 2.0 + 0.6)
    assert summary["convolution_ms"] == pytest.approx(42.0)
    rows = {(r["kind"], r["propagation"]): r for r in summary["by_kind"]}
    forward = rows[("convolution", "forward_training")]
    assert forward["calls"] == 1
    assert forward["gflops_per_s"] == pytest.approx(2 * 256 * 64 * 64 * 32**2 * 9 / 40e6)
    assert "gflops_per_s" not in rows[("reorder", "undef")]
    assert [r["ms"] for r in summary["by_kind"]] == sorted(
        (r["ms"] for r in summary["by_kind"]), reverse=True
    )
    half = onednn_log.scaled(summary, 0.5)
    assert half["total_ms"] == pytest.approx(21.3)
    assert half["by_kind"][0]["calls"] == 0.5
    assert half["by_kind"][0]["gflops_per_s"] == pytest.approx(forward["gflops_per_s"])


def test_a_key_the_shorter_run_cancels_is_dropped():
    summary = onednn_log.summarize(records([CONV_TF, REORDER]), minus=records([REORDER]))
    assert [r["kind"] for r in summary["by_kind"]] == ["convolution"]


def test_tool_prints_and_writes_the_summary(tmp_path):
    log = tmp_path / "long.log"
    log.write_text("\n".join([CONV_TF, *OTHER, CONV_TF, REORDER]) + "\n")
    short = tmp_path / "short.log"
    short.write_text(CONV_TF + "\n")
    out = tmp_path / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "benchmarks", "onednn_summary.py"),
            str(log),
            f"--minus={short}",
            "--per=2",
            f"--output={out}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "20.3 ms in all, 20.0 in convolutions" in result.stdout
    assert json.loads(out.read_text())["convolution_ms"] == pytest.approx(20.0)


@pytest.mark.parametrize(
    "log_text, args, message",
    [
        ("no oneDNN here\n", [], "holds no oneDNN primitive exec lines"),
        (CONV_TF + "\n", ["--per=0"], "--per must be positive"),
    ],
)
def test_tool_refuses_an_empty_log_and_a_bad_divisor(tmp_path, log_text, args, message):
    log = tmp_path / "run.log"
    log.write_text(log_text)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "onednn_summary.py"), str(log), *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr
    if not args:
        assert str(log) in result.stderr
