"""The compiled step's StepSpec: built once from the config, immutable, and all it reads."""

import dataclasses
import os

import pytest

from byol_tf import config as config_lib
from byol_tf.core.update import StepSpec
from tests import REPO


def test_step_spec_holds_what_the_step_reads_and_cannot_change():
    c = config_lib.load_config(os.path.join(REPO, "configs", "default.py") + ":local")
    c.objective.name, c.objective.temperature = "nt_xent", 0.2
    c.model.concat_views, c.train.backprop_per_view = True, False
    c.augment.on_device, c.seed = True, 7
    spec = StepSpec.from_config(c)
    assert (spec.global_batch_size, spec.objective, spec.temperature) == (
        c.data.global_batch_size,
        "nt_xent",
        0.2,
    )
    assert spec.concat_views and not spec.backprop_per_view and spec.seed == 7
    assert spec.device_augment.view2.blur_p == c.augment.view2.blur_p
    # Later edits of the config do not reach a step built from the spec.
    c.augment.view2.blur_p = 0.5
    assert spec.device_augment.view2.blur_p != 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.concat_views = False
    with pytest.raises((AttributeError, ValueError)):
        spec.device_augment.view1.blur_p = 0.0
    c.augment.on_device = False
    assert StepSpec.from_config(c).device_augment is None
    hash(StepSpec.from_config(c))  # a value: usable as a cache key
