"""Semi-supervised fine-tuning of an exported encoder on a class-balanced label subset.

  byol-finetune --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--label_fraction=0.01 | --labels_per_class=N | --subset_file=<path>] [--from_scratch] \
      [--output=<json>] [--export=<dir>] [--write_subset=<path>] \
      [--config=configs/finetune.py[:local]] [--config.<field>=<value> ...]

The whole network is trained with a new linear head; --from_scratch trains the same
architecture from random initialisation on the same subset (the supervised baseline). The
subset depends only on the train source and --config.subset.seed, so every method compared
uses the same examples; --write_subset saves their list. --export writes the fine-tuned
classifier as a SavedModel (images in [0, 1] -> logits, probabilities).
"""

from absl import app, flags

from byol_tf import cli
from byol_tf.cli import common
from byol_tf.evaluation.finetune import run_finetune

_CONFIG = common.define_config("finetune")
_FRACTION = flags.DEFINE_float(
    "label_fraction", None, "Fraction of the train labels, in (0, 1] (default: the config's)."
)
_PER_CLASS = flags.DEFINE_integer("labels_per_class", None, "Labelled examples per class.")
_SUBSET_FILE = flags.DEFINE_string("subset_file", None, "A file listing the examples to use.")
_FROM_SCRATCH = flags.DEFINE_bool("from_scratch", False, "Random initialisation (baseline).")
_EXPORT = flags.DEFINE_string("export", None, "Where to export the fine-tuned classifier.")
_WRITE_SUBSET = flags.DEFINE_string("write_subset", None, "Where to write the subset's list.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    common.quiet_tensorflow()
    d = common
    result = run_finetune(
        d.ENCODER.value,
        d.TRAIN.value,
        d.TEST.value,
        _CONFIG.value,
        label_fraction=_FRACTION.value,
        labels_per_class=_PER_CLASS.value,
        subset_file=_SUBSET_FILE.value,
        from_scratch=_FROM_SCRATCH.value,
        export_dir=_EXPORT.value,
        write_subset=_WRITE_SUBSET.value,
    )
    if result.export_dir:
        print(f"Fine-tuned classifier exported to {result.export_dir}")
    d.finish(result.report)


def run() -> None:
    """The `byol-finetune` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
