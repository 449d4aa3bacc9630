"""Linear evaluation of a frozen encoder exported as a SavedModel (the paper's protocol).

  python tools/linear_eval.py --encoder=workdirs/cifar10/export/encoder \
      --train=folder:/data/cifar10/train --test=folder:/data/cifar10/val \
      --config=configs/linear_eval.py --output=workdirs/cifar10/linear_eval.json

DeepMind's recipe (`byol/configs/eval.py`): 80 epochs of SGD with Nesterov momentum 0.9, cosine
decay, no weight decay, base lr 0.2 x batch / 256; random crop + flip for train images, a
centre crop for test images. Where we differ: we choose the learning rate among
`optimizer.base_learning_rates` on a validation split carved out of the train source (the
reference used 0.2 alone), then retrain on all of it; and on a CPU `train.mode=auto` trains on
cached representations of centre-cropped images (no train-time augmentation). Force the
protocol with `--config.train.mode=augmented`, or one learning rate with
`--config.optimizer.base_learning_rates='(0.2,)'`.

`configs/linear_eval.py:local` is a tiny variant for tests and smoke runs.
"""

from byol_tf.evaluation.config import linear_eval_config


def get_config(arg: str = ""):
    c = linear_eval_config()
    if arg == "local":
        c.data.image_size = 16
        c.train.batch_size = 16
        c.eval.batch_size = 32
        c.schedule.epochs = 5
        c.optimizer.base_learning_rates = (0.5,)
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
