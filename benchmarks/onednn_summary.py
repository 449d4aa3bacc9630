"""Totals a oneDNN verbose log by primitive, with the convolutions' GFLOP/s; writes JSON.

  B="python benchmarks/benchmark.py --config=configs/benchmark.py:w64_b256 --parts=train_step \
     --warmup=1 --windows=1"
  ONEDNN_VERBOSE=1 $B --calls=5 > long.log
  ONEDNN_VERBOSE=1 $B --calls=1 > short.log
  python benchmarks/onednn_summary.py long.log --minus=short.log --per=4 --output=onednn.json

`--minus` subtracts a shorter run of the same command, leaving the steps the longer one added;
`--per` divides by how many those are. Works on TensorFlow's and PyTorch's logs alike (both use
oneDNN). See benchmarks/bench/onednn_log.py.
"""

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags, logging

from benchmarks.bench import onednn_log
from byol_tf.platform import files as io

_MINUS = flags.DEFINE_string("minus", None, "Log of a shorter run, subtracted.")
_PER = flags.DEFINE_float("per", 1.0, "Divide every total by this (e.g. the steps added).")
_TOP = flags.DEFINE_integer("top", 12, "Convolution problems to print.")
_OUTPUT = flags.DEFINE_string("output", None, "JSON file to write.")


flags.register_validator("per", lambda per: per > 0, message="--per must be positive.")


def _records(path: str) -> list[dict]:
    with open(path, errors="replace") as f:
        records, broken = onednn_log.exec_records(f)
    if broken:
        logging.warning("%s: skipped %d exec lines that were cut short.", path, broken)
    if not records:
        raise app.UsageError(
            f"{path} holds no oneDNN primitive exec lines: was the run made with "
            "ONEDNN_VERBOSE=1, and its standard output saved?"
        )
    return records


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Give one oneDNN verbose log.")
    minus = _records(_MINUS.value) if _MINUS.value else None
    summary = onednn_log.scaled(onednn_log.summarize(_records(argv[1]), minus), 1 / _PER.value)
    for row in summary["by_kind"] + summary["convolutions"][: _TOP.value]:
        rate = f"{row['gflops_per_s']:7.0f} GFLOP/s" if "gflops_per_s" in row else ""
        name = " ".join(str(row[k]) for k in ("kind", "propagation", "problem") if k in row)
        print(f"{row['ms']:10.1f} ms {row['calls']:7.1f} calls {rate:>15}  {name}")
    print(f"{summary['total_ms']:10.1f} ms in all, {summary['convolution_ms']:.1f} in convolutions")
    if _OUTPUT.value:
        io.atomic_write_json(_OUTPUT.value, summary)


if __name__ == "__main__":
    app.run(main)
