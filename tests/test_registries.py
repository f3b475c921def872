"""The extension points are tables and contracts (issue 21, item 5), and what users type is checked in
their words: the quality flags' stored bits and the format cached flag arrays carry, the architecture
contract held on every build, the training CLI's defaults (TrainConfig's own), bad hyper-parameters as
InputError, and the model-offer rule in core."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from core.data.quality import FLAG_BITS, FLAGS, QUALITY_FORMAT
from core.errors import InputError, ModelError, RunError
from core.model.architectures import ARCHITECTURES, build_model, register
from core.region.outputs import flags_of, read_outputs
from core.settings import BASELINE_MODEL, SAMPLE_DATASET
from core.train.config import TrainConfig


def test_each_quality_flag_keeps_the_bit_stored_in_cached_arrays():
    # quality.npy files on disk hold these bits: a flag's bit never moves, whatever order FLAGS lists.
    assert FLAG_BITS == {"background": 1, "not_he": 2, "blurred": 4, "out_of_distribution": 8}
    assert len({flag.bit for flag in FLAGS}) == len(FLAGS) and max(flag.bit for flag in FLAGS) < 8  # uint8
    assert flags_of(FLAG_BITS["blurred"] | FLAG_BITS["out_of_distribution"]) == (
        "blurred",
        "out_of_distribution",
    )


def _region_folder(folder, summary: dict):
    folder.mkdir()
    np.save(folder / "probabilities.npy", np.full((2, 3), 0.5, np.float32))
    np.save(folder / "quality.npy", np.array([[0, 1, 2], [4, 8, 0]], np.uint8))
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_region_outputs_whose_flag_bits_have_another_format_read_as_absent(tmp_path):
    current = _region_folder(tmp_path / "current", {"grid": [2, 3], "quality_format": QUALITY_FORMAT})
    assert read_outputs(current)["quality"].tolist() == [[0, 1, 2], [4, 8, 0]]
    older = _region_folder(tmp_path / "older", {"grid": [2, 3]})  # written before the format was stored
    assert (read_outputs(older) is not None) == (QUALITY_FORMAT == 1)  # format 1 is today's bits
    other = _region_folder(tmp_path / "other", {"grid": [2, 3], "quality_format": QUALITY_FORMAT + 1})
    assert read_outputs(other) is None  # its bits may name other flags: computed again, never misread


def _without_last_conv(**_):
    import keras

    inputs = keras.Input(shape=(96, 96, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="tumour_probability")(x))


def _two_outputs(**_):
    import keras

    inputs = keras.Input(shape=(96, 96, 3))
    x = keras.layers.Conv2D(4, 3, name="last_conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="tumour_probability")(x))


@pytest.mark.parametrize(
    ("builder", "broken"),
    [(_without_last_conv, "no layer named 'last_conv'"), (_two_outputs, "Dense\\(1\\)")],
)
def test_an_architecture_that_breaks_the_contract_is_refused_when_built(builder, broken):
    name = f"broken-{builder.__name__}"
    register(replace(ARCHITECTURES["tiny"], name=name, build=builder))
    try:
        with pytest.raises(ModelError, match=broken):
            build_model(name)
        with pytest.raises(ModelError, match="already registered"):
            register(replace(ARCHITECTURES["tiny"], name=name))
    finally:
        ARCHITECTURES.pop(name)
    assert build_model("tiny").get_layer("last_conv") is not None  # a registered one keeps it


def test_the_train_command_takes_every_default_from_train_config(workspace):
    from core.cli import build_parser
    from core.cli.train import config_from_args

    args = build_parser().parse_args(["train", str(SAMPLE_DATASET)])
    expected = TrainConfig(data=[str(SAMPLE_DATASET.resolve())]).validate()
    assert config_from_args(args).to_dict() == expected.to_dict()


@pytest.mark.parametrize(
    "values",
    [
        {"epochs": 0},
        {"learning_rate": -1.0},
        {"architecture": "nope"},
        {"schedule": "step"},
        {"val_fraction": 1.5},
    ],
)
def test_a_bad_hyper_parameter_is_an_input_error(values):
    with pytest.raises(InputError) as raised:
        TrainConfig(data=[str(SAMPLE_DATASET)], **values).validate()
    assert isinstance(raised.value, RunError)  # and still a RunError: the run cannot start


def test_the_model_offer_rule_lives_in_core(tmp_path, workspace):
    from core.model.offered import check_offered_model

    stray = tmp_path / "elsewhere.keras"
    stray.write_bytes(BASELINE_MODEL.read_bytes())
    with pytest.raises(ModelError, match="neither the bundled baseline nor a run"):
        check_offered_model(str(stray))
    assert check_offered_model(str(BASELINE_MODEL)) == BASELINE_MODEL.resolve()
