"""STL-10: ResNet-18 with the ImageNet stem at 96 px, pretrained on the unlabeled split.

  python tools/train.py --config=configs/stl10.py --workdir=workdirs/stl10 \
      --config.data.data_dir=/data/tfds

STL-10 must be prepared with TFDS elsewhere (`tfds build stl10`) and its data_dir copied here;
byol-tf never downloads. Batch 256 and 300 epochs with base lr 0.3 follow the reference's
300-epoch setting; tau_base 0.99 as DeepMind uses for 300 epochs.

`configs/stl10.py:local` is a tiny variant for tests.
"""

from byol_tf.config import base_config


def get_config(arg: str = ""):
    c = base_config()
    c.data.train = "tfds:stl10:unlabelled"
    c.data.image_size = 96
    c.data.global_batch_size = 256
    c.data.mean = (0.4467, 0.4398, 0.4066)
    c.data.std = (0.2603, 0.2566, 0.2713)

    c.model.encoder = "resnet18"
    c.model.stem = "imagenet"

    c.optimizer.base_lr = 0.3
    c.optimizer.weight_decay = 1e-6
    c.schedule.epochs = 300
    c.schedule.warmup_epochs = 10
    c.ema.tau_base = 0.99

    c.eval.knn_train = "tfds:stl10:train"
    c.eval.knn_test = "tfds:stl10:test"
    c.checkpoint.every_steps = 1000
    c.export.every_epochs = 50
    c.train.log_every_steps = 50

    if arg == "local":
        c.data.train = "synthetic:train"
        c.data.image_size = 32
        c.data.synthetic.num_train = 128
        c.data.global_batch_size = 16
        c.model.base_width = 8
        c.model.projector.hidden_dim = 32
        c.model.predictor.hidden_dim = 32
        c.model.projector.output_dim = 16
        c.model.predictor.output_dim = 16
        c.schedule.total_steps = 2
        c.eval.knn_train = ""
        c.eval.knn_test = ""
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
