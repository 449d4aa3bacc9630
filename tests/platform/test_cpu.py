"""byol_tf.platform.cpu: oneDNN on by default unless the user chose, the vector ISA, the record."""

import pytest

from byol_tf.platform import cpu


def test_onednn_is_set_when_nobody_chose_and_tensorflow_is_not_yet_imported():
    environ = {}
    assert cpu.default_onednn_on(environ, tensorflow_imported=False) == "set"
    assert environ == {cpu.ONEDNN_VAR: "1", cpu.DEFAULT_MARKER: "1"}
    assert cpu.onednn_setting(environ)["onednn_chosen_by"] == "byol-tf"
    # A child process inherits both variables: still byol-tf's default, not the user's.
    assert cpu.default_onednn_on(dict(environ), tensorflow_imported=True) == "set"


@pytest.mark.parametrize("value", ["0", "false", "1", "TRUE", "bogus", ""])
def test_a_value_the_user_set_is_kept_unchanged_and_recorded_as_theirs(value):
    environ = {cpu.ONEDNN_VAR: value, cpu.ISA_VAR: "AVX2"}
    assert cpu.default_onednn_on(environ, tensorflow_imported=False) == "user"
    assert environ == {cpu.ONEDNN_VAR: value, cpu.ISA_VAR: "AVX2"}
    setting = cpu.onednn_setting(environ)
    assert setting == {
        cpu.ONEDNN_VAR: value,
        "onednn_chosen_by": "user",
        cpu.ISA_VAR: "AVX2",
    }


def test_too_late_after_tensorflow_was_imported():
    environ = {}
    assert cpu.default_onednn_on(environ, tensorflow_imported=True) == "too late"
    assert environ == {}
    assert cpu.onednn_setting(environ)["onednn_chosen_by"] is None


def test_warns_once_only_when_too_late_and_off(monkeypatch):
    monkeypatch.setattr(cpu, "_warned", False)
    monkeypatch.setattr(cpu, "onednn_enabled", lambda: True)
    assert not cpu.warn_if_onednn_off("too late")  # on anyway: nothing to say
    monkeypatch.setattr(cpu, "onednn_enabled", lambda: False)
    assert not cpu.warn_if_onednn_off("user")  # the user's choice stands silently
    warnings = []
    monkeypatch.setattr("absl.logging.warning", lambda *args: warnings.append(args))
    assert cpu.warn_if_onednn_off("too late")
    assert cpu.warn_if_onednn_off("too late")
    assert len(warnings) == 1 and cpu.ONEDNN_VAR in warnings[0]


@pytest.mark.parametrize(
    "flags, isa",
    [
        ({"sse4_2", "avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"}, "amx"),
        ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "avx512_bf16"),
        ({"avx2", "avx512f", "avx512_vnni"}, "avx512_vnni"),
        ({"avx2", "avx512f"}, "avx512"),
        ({"avx2", "avx_vnni"}, "avx_vnni"),  # Alder Lake: no AVX-512, oneDNN's default on
        ({"sse4_2", "avx", "avx2", "fma"}, "avx2"),  # e.g. AMD Zen 3
        ({"sse4_2"}, "sse4.2"),
        (set(), "unknown"),
    ],
)
def test_vector_isa(flags, isa):
    assert cpu.vector_isa(flags) == isa


def test_machine_records_the_cpu_class_and_onednn():
    record = cpu.machine()
    for key in ("cpu", "cpu_vector_isa", "onednn_enabled", cpu.ONEDNN_VAR, cpu.ISA_VAR):
        assert key in record
    assert record["onednn_enabled"] in (True, False)


AVX512_FLAGS = {"avx", "avx2", "avx512f", "avx512_vnni"}


@pytest.mark.parametrize(
    "cap, expected",
    [
        (None, "avx512_vnni"),
        ("AVX2", "avx2"),
        ("avx2_vnni", "avx_vnni"),
        ("AVX512_CORE_AMX", "avx512_vnni"),
        ("ALL", "avx512_vnni"),
    ],
)
def test_onednn_isa_is_the_cpus_lowered_by_the_cap(cap, expected):
    environ = {} if cap is None else {cpu.ISA_VAR: cap}
    assert cpu.onednn_isa(environ, AVX512_FLAGS) == expected
    # A cap above the CPU does not raise it.
    assert cpu.onednn_isa({cpu.ISA_VAR: "AVX512_CORE"}, {"avx", "avx2"}) == "avx2"


def _strided_1x1_model(in_channels: int):
    import keras

    inputs = keras.Input((8, 8, in_channels))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c3x3")(inputs)
    y = keras.layers.Conv2D(8, 1, strides=2, name="shortcut")(inputs)
    z = keras.layers.Conv2D(8, 1, strides=1, name="c1x1")(inputs)
    return keras.Model(inputs, [x, y, z])


@pytest.mark.parametrize("in_channels, flagged", [(3, True), (4, True), (8, False), (12, False)])
def test_finds_the_strided_1x1_convolutions_oneDNNs_avx2_kernels_get_wrong(in_channels, flagged):
    model = _strided_1x1_model(in_channels)
    expected = ["shortcut"] if flagged else []
    assert cpu.onednn_faulty_convolutions(model, "avx2", onednn_on=True) == expected
    # AVX-512 kernels and TF's Eigen kernels are right.
    assert cpu.onednn_faulty_convolutions(model, "avx512_bf16", onednn_on=True) == []
    assert cpu.onednn_faulty_convolutions(model, "avx2", onednn_on=False) == []


def test_our_resnets_have_no_such_layer_from_base_width_8():
    import tensorflow as tf

    from byol_tf.models.resnet import ResNet

    for width, faulty in ((4, 1), (8, 0)):  # the first projection shortcut has base_width inputs
        model = ResNet(depth=18, base_width=width, stem="cifar")
        model(tf.zeros([1, 16, 16, 3]), training=False)
        assert len(cpu.onednn_faulty_convolutions(model, "avx2", onednn_on=True)) == faulty


def test_the_fault_is_where_the_check_says_it_is():
    """A 1x1 stride-2 kernel gradient with 4 input channels, against NumPy: wrong only where
    `onednn_faulty_convolutions` flags it (with the kernels this process runs). Run it under
    ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU, or on an AVX2 CPU with oneDNN on, to see it
    fail if oneDNN is ever fixed or the fault ever moves."""
    import numpy as np
    import tensorflow as tf

    x = tf.random.stateless_normal([4, 8, 8, 4], seed=[1, 2])
    kernel = tf.random.stateless_normal([1, 1, 4, 8], seed=[5, 6])
    dy = tf.random.stateless_normal([4, 4, 4, 8], seed=[7, 8])

    @tf.function
    def kernel_gradient():
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            y = tf.nn.conv2d(x, kernel, 2, "VALID")
        return tape.gradient(y, kernel, dy)

    expected = np.einsum("bhwi,bhwo->io", x.numpy()[:, ::2, ::2], dy.numpy())
    error = max(float(np.abs(kernel_gradient()[0, 0] - expected).max()) for _ in range(5))
    model = _strided_1x1_model(4)
    flagged = bool(cpu.onednn_faulty_convolutions(model, cpu.onednn_isa(), cpu.onednn_enabled()))
    assert (error > 1e-3) == flagged, (error, cpu.onednn_isa(), cpu.onednn_enabled())


def test_the_trainer_names_the_faulty_layers(tmp_path, monkeypatch, caplog):
    from byol_tf.training import trainer as train
    from tests.training.test_train import tiny_config

    monkeypatch.setattr(cpu, "onednn_isa", lambda: "avx2")
    monkeypatch.setattr(cpu, "onednn_enabled", lambda: True)
    train.Trainer(tiny_config(**{"model.base_width": 8}), str(tmp_path / "w8"))
    assert "1x1 strided convolution" not in caplog.text
    train.Trainer(tiny_config(**{"model.base_width": 4}), str(tmp_path / "w4"))
    assert "stage2_block0/proj_conv are such layers" in caplog.text
