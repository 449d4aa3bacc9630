"""Gradient rematerialisation: keep a segment's input, recompute its activations when needed.

A residual block's backward pass reads most of the activations its forward pass produced
(its convolutions' inputs and outputs, its ReLU outputs: about four feature maps for a basic
block). With
`recompute` only the block's input is kept; the backward pass runs the block forward again
and differentiates that. Peak memory falls to roughly one block's activations plus the block
inputs, for the price of a second forward pass of the wrapped segments.

The second forward pass must not repeat the segment's side effects: a BatchNorm layer in
training mode updates its moving statistics, and doing that twice per step would change the
effective momentum. Layers ask `recomputing()` and skip their updates while it is true.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import tensorflow as tf

_state = threading.local()


def recomputing() -> bool:
    """True while a segment's forward pass is being re-run for its gradient."""
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def _recomputing() -> Iterator[None]:
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def recompute(fn: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """Wraps `fn` (one tensor in, one out; built layers only) to recompute in the backward pass.

    The result computes the same values and the same gradients (for the input and for every
    variable `fn` reads) as `fn`, but keeps none of `fn`'s intermediate activations between
    the forward and the backward pass.
    """

    @tf.custom_gradient
    def wrapped(x):
        y = fn(x)

        def grad(dy, variables=None):
            variables = list(variables or [])

            # A function call that is never inlined, for two reasons. It starts only once dy
            # exists, so the recomputation cannot run early (during the forward pass) and keep
            # its activations alive after all. And Grappler cannot merge the recomputed ops
            # with the identical forward ops they repeat, which, measured, undid most of the
            # saving when the recomputation sat in the step's own graph.
            @tf.function(autograph=False, experimental_attributes={"_noinline": True})
            def backward(x, dy):
                with _recomputing(), tf.GradientTape() as tape:
                    tape.watch(x)
                    y_again = fn(x)
                return tape.gradient(y_again, (x, variables), output_gradients=dy)

            return backward(x, dy)

        return y, grad

    return wrapped
