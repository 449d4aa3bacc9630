#!/usr/bin/env bash
# One side-by-side sitting against byol-pytorch (shared/bench/peer): both libraries' float32
# matmul, then ROUNDS interleaved rounds of the faithful step at width 16 and 64, batch 256,
# with and without augmentation in the loop; the matmuls again at the end. One process at a
# time. `benchmarks/peer_ratios.py OUT` turns the files into the table of docs/performance.md.
#
#   PEER=../shared/bench/peer PEER_PY=/tmp/venv_pt/bin/python OUT=sitting ROUNDS=3 \
#       [CAP=AVX2] bash benchmarks/peer_sitting.sh
#
# CAP=AVX2 approximates a CPU without AVX-512 on one that has it, on both sides: oneDNN's
# kernels (ONEDNN_MAX_CPU_ISA, honoured by TF's and torch's oneDNN), torch's own kernels
# (ATEN_CPU_CAPABILITY) and MKL's matmul (MKL_ENABLE_INSTRUCTIONS). TF's own (Eigen) kernels
# in the pip wheel are built without AVX2 or AVX-512 (TF says so when it starts), so they need
# no cap. Each round also times our w16 step with TF_ENABLE_ONEDNN_OPTS=0: TF's own default on
# CPUs without AVX-512 VNNI/BF16 or AMX.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PEER:?set PEER to the peer folder (shared/bench/peer)}"
PEER_PY="${PEER_PY:-/tmp/venv_pt/bin/python}"
OUT="${OUT:?set OUT to a new folder for the results}"
ROUNDS="${ROUNDS:-3}"
if [ "${CAP:-}" = "AVX2" ]; then
  export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
elif [ -n "${CAP:-}" ]; then
  echo "peer_sitting.sh: CAP must be AVX2 or empty, got '$CAP'" >&2; exit 1
fi
mkdir -p "$OUT"
P=("$PEER_PY" "$PEER/peer_byol_torch.py" --threads 2)
B=(python benchmarks/benchmark.py --windows=3 --calls=2 --warmup=2)

matmuls() {
  "${P[@]}" --matmul > "$OUT/peer_matmul_$1.json"
  "${B[@]}" --config=configs/benchmark.py:w16_b256 --parts=matmul --output="$OUT/ours_matmul_$1.json"
}

date -u +%FT%TZ > "$OUT/started"
matmuls before
for r in $(seq 1 "$ROUNDS"); do
  "${P[@]}" --width 16 --batch 256 --aug none --steps 10 > "$OUT/r${r}_peer_w16_none.json"
  "${P[@]}" --width 16 --batch 256 --aug kornia --steps 10 > "$OUT/r${r}_peer_w16_kornia.json"
  "${B[@]}" --config=configs/benchmark.py:w16_b256 --parts=train_step,augmented_step \
    --output="$OUT/r${r}_ours_w16.json"
  TF_ENABLE_ONEDNN_OPTS=0 "${B[@]}" --config=configs/benchmark.py:w16_b256 --parts=train_step \
    --output="$OUT/r${r}_ours_w16_eigen.json"
  "${P[@]}" --width 64 --batch 256 --aug none --steps 6 > "$OUT/r${r}_peer_w64_none.json"
  "${P[@]}" --width 64 --batch 256 --aug kornia --steps 6 > "$OUT/r${r}_peer_w64_kornia.json"
  "${B[@]}" --config=configs/benchmark.py:w64_b256 --parts=train_step,augmented_step \
    --output="$OUT/r${r}_ours_w64.json"
done
matmuls after
date -u +%FT%TZ > "$OUT/finished"
