"""Which labelled examples an evaluation uses: label subsets, validation splits, subset files.

A label subset is class-balanced: the same number of examples from every class, the first ones
of a per-class permutation seeded by (seed, class). So it is deterministic for a seed, and a
smaller subset is contained in a larger one drawn with the same seed (1% inside 10%). An
example is named by its path relative to the folder for `folder:` sources and by its index
(its position in the source's fixed order) otherwise; a subset is recorded as the number of
examples per class and the SHA-256 of its example names, one per line in index order. Subset
files list the same names, one per line (lines starting with '#' are comments), in the spirit
of the 1% / 10% ImageNet files of SimCLR and BYOL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os

import numpy as np

from byol_tf.data import Source, require_labels
from byol_tf.platform import files as io


@dataclasses.dataclass(frozen=True)
class Subset:
    """A set of examples of one source, sorted by index."""

    indices: np.ndarray  # int64, ascending
    ids: list[str]  # example names, same order
    per_class: list[int]  # count of each class id
    sha256: str
    method: str  # "all", "label_fraction", "labels_per_class" or "subset_file"
    seed: int | None

    def info(self) -> dict:
        """The JSON record of the subset (see byol_tf.evaluation.report)."""
        return {
            "num_examples": len(self.indices),
            "per_class": list(self.per_class),
            "sha256": self.sha256,
            "method": self.method,
            "seed": self.seed,
        }


def source_labels(source: Source) -> np.ndarray:
    """int64 [num_examples] labels in index order; reads the source only when it must."""
    require_labels(source, "Choosing labelled examples")
    if source.labels is not None:
        return np.asarray(source.labels, np.int64)
    labels = [
        batch.numpy() for batch in source.ordered_examples().map(lambda e: e["label"]).batch(4096)
    ]
    return np.concatenate(labels).astype(np.int64)


def example_ids(source: Source) -> list[str]:
    """The name of every example, in index order (see the module docstring)."""
    if source.example_ids is not None:
        return list(source.example_ids)
    return [str(i) for i in range(source.num_examples)]


def subset_hash(ids: list[str]) -> str:
    """SHA-256 (hex) of the example names, one per line, in the order given."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def _class_name(source: Source, label: int) -> str:
    if source.class_names and 0 <= label < len(source.class_names):
        return f"{label} ({source.class_names[label]!r})"
    return str(label)


def _make(source: Source, labels, indices, method: str, seed: int | None) -> Subset:
    indices = np.sort(np.asarray(indices, np.int64))
    all_ids = example_ids(source)
    ids = [all_ids[i] for i in indices]
    counts = np.bincount(
        labels[indices], minlength=require_labels(source, "A label subset", "train")
    )
    return Subset(indices, ids, counts.tolist(), subset_hash(ids), method, seed)


def per_class_permutations(labels: np.ndarray, num_classes: int, seed: int) -> list[np.ndarray]:
    """For each class, its example indices in an order seeded by (seed, class)."""
    out = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng([int(seed), c])
        out.append(members[rng.permutation(len(members))])
    return out


def labels_per_class_for_fraction(num_examples: int, num_classes: int, fraction: float) -> int:
    """Examples per class of a balanced subset holding `fraction` of `num_examples` (at least 1)."""
    check_label_fraction(fraction)
    return max(1, int(round(fraction * num_examples / num_classes)))


def check_label_fraction(fraction: float) -> None:
    if not (isinstance(fraction, int | float) and 0.0 < fraction <= 1.0):
        raise ValueError(
            f"label_fraction={fraction} must be in (0, 1]: e.g. 0.01 for 1% of the labels, "
            "1.0 for all of them."
        )


def balanced_subset(source: Source, labels_per_class: int, seed: int, method: str) -> Subset:
    """`labels_per_class` examples of every class; an error names a class that has fewer."""
    num_classes = require_labels(source, "A label subset", "train")
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class={labels_per_class} must be >= 1.")
    labels = source_labels(source)
    chosen = []
    for c, members in enumerate(per_class_permutations(labels, num_classes, seed)):
        if len(members) < labels_per_class:
            raise ValueError(
                f"{labels_per_class} labels per class requested, but class "
                f"{_class_name(source, c)} of {source.spec!r} has only {len(members)} example(s). "
                f"Ask for at most {min(np.bincount(labels, minlength=num_classes))} per class "
                "(--labels_per_class) or a smaller --label_fraction."
            )
        chosen.append(members[:labels_per_class])
    return _make(source, labels, np.concatenate(chosen), method, seed)


def select_subset(
    source: Source,
    label_fraction: float | None = None,
    labels_per_class: int | None = None,
    subset_file: str | None = None,
    seed: int = 0,
) -> Subset:
    """The labelled training subset: from `subset_file`, else `labels_per_class`, else
    `label_fraction` (1.0 = every example, unbalanced if the source is)."""
    require_labels(source, "A label subset", "train")
    if subset_file:
        return read_subset_file(subset_file, source)
    if labels_per_class:
        return balanced_subset(source, int(labels_per_class), seed, "labels_per_class")
    if label_fraction is None:
        raise ValueError("Give one of label_fraction, labels_per_class or subset_file.")
    check_label_fraction(label_fraction)
    if label_fraction == 1.0:
        return _make(source, source_labels(source), np.arange(source.num_examples), "all", None)
    per_class = labels_per_class_for_fraction(
        source.num_examples, source.num_classes, label_fraction
    )
    return balanced_subset(source, per_class, seed, "label_fraction")


def validation_split(
    labels: np.ndarray, num_classes: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val) sorted index arrays: `fraction` of every class (rounded up) held out.

    Classes with a single example stay in `fit`. Seeded by (seed + 1, class), so the split does
    not line up with a label subset drawn with the same seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction={fraction} must be in (0, 1).")
    val = []
    for members in per_class_permutations(labels, num_classes, seed + 1):
        count = min(math.ceil(fraction * len(members)), len(members) - 1)
        val.append(members[: max(count, 0)])
    val = np.sort(np.concatenate(val)).astype(np.int64)
    fit = np.setdiff1d(np.arange(len(labels)), val).astype(np.int64)
    if len(val) == 0 or len(fit) == 0:
        raise ValueError(
            f"A validation split of {fraction} leaves {len(fit)} train and {len(val)} validation "
            "examples; use more data or a single learning rate."
        )
    return fit, val


def write_subset_file(path: str, subset: Subset, source: Source) -> str:
    """Writes the subset's example names, one per line, under a comment header."""
    header = [
        f"# byol-tf label subset of {source.spec}",
        f"# {len(subset.ids)} examples, per class {subset.per_class}, "
        f"method {subset.method}, seed {subset.seed}",
        f"# sha256 {subset.sha256}",
    ]
    io.makedirs(os.path.dirname(path if io.is_remote(path) else os.path.abspath(path)))
    with io.open_file(path, "w") as f:
        f.write("\n".join(header + subset.ids) + "\n")
    return path


def read_subset_file(path: str, source: Source) -> Subset:
    """The subset listed in `path`; every name must be an example of `source`, once."""
    if not io.exists(path) or io.isdir(path):
        raise FileNotFoundError(f"Subset file {path!r} does not exist.")
    with io.open_file(path) as f:
        names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if not names:
        raise ValueError(f"Subset file {path!r} lists no examples.")
    position = {name: i for i, name in enumerate(example_ids(source))}
    unknown = [n for n in names if n not in position]
    if unknown:
        raise ValueError(
            f"Subset file {path!r} names {len(unknown)} example(s) that {source.spec!r} does not "
            f"have, e.g. {unknown[:3]}. Examples are named by their path relative to the folder "
            "(folders) or by their index (other sources)."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"Subset file {path!r} lists some examples more than once.")
    indices = np.array([position[n] for n in names], np.int64)
    return _make(source, source_labels(source), indices, "subset_file", None)


def _folder_files(source: Source) -> set[str] | None:
    if not source.spec.startswith("folder:") or source.example_ids is None:
        return None
    root = os.path.expanduser(source.spec.partition(":")[2])
    return {os.path.realpath(os.path.join(root, i)) for i in source.example_ids}


def check_disjoint(train: Source, test: Source) -> None:
    """Refuses a test source that is the train source, or (folders) shares files with it."""
    if train.spec == test.spec:
        raise ValueError(
            f"The train and test sources are both {train.spec!r}: evaluate on held-out data, "
            "e.g. --train=synthetic:train --test=synthetic:test."
        )
    train_files, test_files = _folder_files(train), _folder_files(test)
    if train_files is not None and test_files is not None:
        shared = sorted(train_files & test_files)
        if shared:
            raise ValueError(
                f"{len(shared)} image(s) are in both the train source {train.spec!r} and the "
                f"test source {test.spec!r}, e.g. {shared[:3]}; the test set must be held out."
            )
