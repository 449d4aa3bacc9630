"""What ONEDNN_MAX_CPU_ISA cannot imitate when the suite runs as another CPU class.

Under ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU, TensorFlow still reads the CPU's own flags
and sends bfloat16 convolutions to oneDNN, whose capped kernels have none: "could not create
a primitive descriptor for the convolution forward propagation primitive". That comes from
the cap (TensorFlow decides from the CPU, oneDNN from the cap), so the bfloat16 runs are
skipped under it. What an AVX2 CPU does with bfloat16 is not measured here.
"""

import pytest

from byol_tf.platform import cpu

capped_below_the_cpu = cpu.onednn_isa() != cpu.vector_isa()

needs_bfloat16_kernels = pytest.mark.skipif(
    capped_below_the_cpu and cpu.onednn_isa() in cpu.AVX2_CLASS,
    reason="ONEDNN_MAX_CPU_ISA caps oneDNN below bfloat16 while TensorFlow sees the CPU's own",
)
