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
