"""The config templates: what each argument changes, and that the template trains on a folder."""

import json
import os

import pytest

from byol_tf import config as config_lib
from byol_tf.training.trainer import Trainer
from tests import REPO
from tests.helpers.downstream_data import write_folder

FOLDER = os.path.join(REPO, "configs", "folder.py")


def test_folder_template_picks_the_stem_and_blur_by_image_size():
    default = config_lib.load_config(FOLDER)
    config_lib.validate(default)
    assert default.data.image_size == 96 and default.model.stem == "imagenet"
    assert default.data.cache is False and default.data.train.startswith("folder:")
    assert default.augment.view1.blur_p == 1.0 and default.augment.view2.blur_p == 0.1
    # DeepMind's 100-epoch preset, as configs/imagenet.py:100 has it.
    preset = config_lib.load_config(os.path.join(REPO, "configs", "imagenet.py:100"))
    for field in ("base_lr", "weight_decay"):
        assert default.optimizer[field] == preset.optimizer[field]
    assert default.ema.tau_base == preset.ema.tau_base and default.schedule.epochs == 100

    small = config_lib.load_config(FOLDER + ":32")
    assert small.data.image_size == 32 and small.model.stem == "cifar"
    assert small.augment.view1.blur_p == 0.0 and small.augment.view2.blur_p == 0.0
    assert config_lib.load_config(FOLDER + ":64").model.stem == "cifar"
    assert config_lib.load_config(FOLDER + ":128").model.stem == "imagenet"


@pytest.mark.parametrize("arg", ["big", "8", "2048", "96px"])
def test_folder_template_rejects_an_unknown_argument(arg):
    with pytest.raises(ValueError, match="image size"):
        config_lib.load_config(f"{FOLDER}:{arg}")


def test_folder_template_trains_on_an_unlabelled_folder_and_exports(tmp_path):
    images = write_folder(str(tmp_path / "images"), per_class=8, seed=0, labelled=False)
    c = config_lib.load_config(FOLDER + ":local")
    c.data.train = f"folder:{images}"
    summary = Trainer(c, str(tmp_path / "run")).fit()
    assert summary["steps"] == 2
    assert os.path.isdir(summary["export_dir"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["train"] == f"folder:{images}" and saved["data"]["cache"] is False
