"""Ordering ops inside a TF graph where data flow alone would let the executor start them early.

TF's executor runs an op as soon as its inputs exist. That is usually right, but an op whose
inputs are ready at the start of a step (a weight read, the next view's images) can then run
long before its result is needed and keep its output, or what it starts, alive at the step's
memory peak. `after` makes a value readable only once given tensors have been computed.
"""

from __future__ import annotations

import tensorflow as tf


def after(x, tensors: list):
    """`x` once every tensor in `tensors` (None entries ignored) has been computed.

    A variable's value is read then. With nothing to wait for, `x` itself.
    """
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return x
    with tf.control_dependencies(tensors):
        return tf.identity(x)
