"""The config schema: every field byol-tf reads, with the paper's values as defaults.

`base_config()` returns the full `ConfigDict` that each file in `configs/` starts from and
overrides. Defaults follow Grill et al. (2020) and DeepMind's reference code (see
docs/algorithm.md). Durations are written in epochs; `derive_steps` is the one place that turns
them into steps. `validate` rejects bad values with an error that names the field.
"""

from __future__ import annotations

import re

import ml_collections

ENCODERS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet200")
# "bn_free_init": BatchNorm replaced by a per-channel affine initialised from one BN forward
# pass on augmented data (Richemond et al. 2020); see byol_tf/models/bn_free.py.
ENCODER_NORMS = ("batch", "sync_batch", "group_ws", "bn_free_init")
HEAD_NORMS = ("batch", "layer", "none")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "bfloat16", "float16")
OPTIMIZERS = ("lars", "sgd")
# "cosine": tau rises from ema.tau_base to 1 over the run (the paper). "constant": tau stays at
# ema.tau_base (lightly's and byol-pytorch's short-run choice).
TAU_SCHEDULES = ("cosine", "constant")
# "byol": the paper. "nt_xent": SimCLR's contrastive loss on the online projections, a baseline.
OBJECTIVES = ("byol", "nt_xent")


def view_config(blur_p: float, solarize_p: float) -> ml_collections.ConfigDict:
    """One view's augmentation distribution (the paper's T with blur/solarize as given)."""
    return ml_collections.ConfigDict(
        dict(
            crop_p=1.0,
            crop_area=(0.08, 1.0),
            crop_aspect_ratio=(3 / 4, 4 / 3),
            flip_p=0.5,
            jitter_p=0.8,
            brightness=0.4,
            contrast=0.4,
            saturation=0.2,
            hue=0.1,
            grayscale_p=0.2,
            blur_p=blur_p,
            blur_sigma=(0.1, 2.0),
            # Kernel side as a fraction of the image side (10% in the paper).
            blur_kernel_fraction=0.1,
            solarize_p=solarize_p,
            solarize_threshold=0.5,
        )
    )


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    # Source strings: `synthetic[:split]`, `tfds:<name>:<split>`, `folder:<path>`.
    c.data.train = "synthetic:train"
    c.data.image_size = 32
    c.data.global_batch_size = 256
    c.data.data_dir = ""  # TFDS data_dir; empty means TFDS's default.
    c.data.shuffle_buffer = 10_000  # Only for streamed sources (TFDS, a tf.data.Dataset).
    c.data.cache = False  # Cache decoded images in memory (small datasets only).
    c.data.validate_images = True  # Pre-scan image folders; corrupt files are skipped and counted.
    # When every image has one known size, crop whole batches in tf.data instead of single
    # images: the same views, much less CPU for small images. Each batch in flight holds its
    # uncropped uint8 originals (batch x H x W x 3 bytes): turn it off for large images.
    c.data.batched_crop = True
    c.data.deterministic = True
    c.data.num_parallel_calls = -1  # -1 = tf.data.AUTOTUNE.
    c.data.prefetch = -1
    # Per-channel statistics used by the model's input normalisation (ImageNet by default).
    # tf.data service dispatcher ("grpc://host:port"): decode and augmentation then run on its
    # workers (tools/data_service.py starts them); empty runs the input pipeline locally.
    c.data.service_address = ""
    c.data.service_timeout_seconds = 30.0  # A dispatcher that does not answer in time is an error.
    # Empty (--config.data.mean='()' --config.data.std='()'): computed from the first 4,096
    # training images at the start of the run (data.channel_statistics) and saved in config.json.
    c.data.mean = (0.485, 0.456, 0.406)
    c.data.std = (0.229, 0.224, 0.225)
    c.data.synthetic = ml_collections.ConfigDict(
        dict(num_train=4096, num_test=1024, image_size=32, num_classes=8, seed=1234)
    )

    c.augment = ml_collections.ConfigDict()
    # False: tf.data runs every op. True: tf.data only decodes and crops; the colour, blur and
    # solarize ops run batched inside the replicated train step (on the accelerator).
    c.augment.on_device = False
    c.augment.view1 = view_config(blur_p=1.0, solarize_p=0.0)
    c.augment.view2 = view_config(blur_p=0.1, solarize_p=0.2)

    c.model = ml_collections.ConfigDict()
    c.model.encoder = "resnet50"
    c.model.width_multiplier = 1
    c.model.base_width = 64  # Channels of the first stage at 1x; the standard ResNet is 64.
    c.model.stem = "imagenet"  # or "cifar"
    c.model.norm = "batch"  # one of ENCODER_NORMS
    # With norm "batch": BatchNorm statistics over all replicas when there are several, as in
    # the reference (its ImageNet runs); False keeps each replica's own. "sync_batch" always
    # synchronises, even with one replica.
    c.model.sync_batchnorm = True
    c.model.bn_momentum = 0.9
    c.model.bn_epsilon = 1e-5
    c.model.gn_groups = 32
    c.model.zero_init_residual = False
    # True: keep only each residual block's input during the forward pass and recompute the
    # block in the backward pass. Less activation memory, one more encoder forward per step.
    c.model.remat = False
    c.model.projector = ml_collections.ConfigDict(
        dict(hidden_dim=4096, output_dim=256, norm="batch")
    )
    c.model.predictor = ml_collections.ConfigDict(
        dict(hidden_dim=4096, output_dim=256, norm="batch")
    )
    # False: each view is its own batch, so BatchNorm statistics are per view (reference code).
    c.model.concat_views = False

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "lars"
    c.optimizer.base_lr = 0.2  # lr = base_lr * global_batch_size / 256
    c.optimizer.weight_decay = 1.5e-6
    c.optimizer.momentum = 0.9
    c.optimizer.trust_coefficient = 1e-3
    c.optimizer.nesterov = False
    # Variables whose path matches any of these regexes skip weight decay and the trust ratio.
    # Matched with re.search on `variable.path` (Keras 3's `variable.name` is only the last part).
    c.optimizer.exclude_patterns = (r"(^|/)bias$", r"(^|/)beta$", r"(^|/)gamma$")
    # LARS scope: only variables whose path matches one of these regexes (and no exclude
    # pattern) get the trust ratio; the others keep weight decay and plain momentum.
    # Empty: every non-excluded variable (the paper).
    c.optimizer.lars_include_patterns = ()
    # Multiplies the learning rate of the variables outside the LARS scope (not excluded, not
    # matched by lars_include_patterns). Without the trust ratio (~1e-3 * |w| / |g|) a LARS
    # learning rate is a far larger step than plain momentum SGD takes; 1.0 keeps it as is.
    c.optimizer.unscoped_lr_scale = 1.0
    # solo-learn's `clip_lr`: each variable moves at its local rate trust_coefficient * |w| /
    # |g + wd * w| itself (not times the learning rate), capped at the learning rate. False:
    # the paper's LARS (lr times the local rate). LARS only; byol_tf/core/lars.py has the
    # exact rule and how it differs from solo-learn's.
    c.optimizer.clip_local_lr = False
    # The predictor q's learning rate is the schedule's times this (SimSiam and DirectPred give
    # the predictor a larger or undecayed rate). LARS only; 1.0 is the paper. The nt_xent
    # baseline never runs the predictor, so there it changes nothing.
    c.optimizer.predictor_lr_multiplier = 1.0
    # False: the predictor's rate warms up with the rest, then holds its peak instead of
    # following the cosine decay (SimSiam's "fixed lr for the predictor"). LARS only.
    c.optimizer.predictor_lr_decay = True

    c.schedule = ml_collections.ConfigDict()
    c.schedule.epochs = 1000
    c.schedule.warmup_epochs = 10
    c.schedule.total_steps = -1  # Overrides epochs when > 0 (tests, benchmarks).
    # Overrides warmup_epochs when >= 0: a warm-up that does not grow with the dataset.
    c.schedule.warmup_steps = -1

    c.ema = ml_collections.ConfigDict()
    c.ema.tau_base = 0.996
    c.ema.tau_schedule = "cosine"  # one of TAU_SCHEDULES

    c.objective = ml_collections.ConfigDict()
    c.objective.name = "byol"  # one of OBJECTIVES
    # nt_xent only: cosine similarities are divided by this before the softmax.
    c.objective.temperature = 0.1

    c.train = ml_collections.ConfigDict()
    c.train.strategy = "default"
    c.train.tpu_address = ""
    c.train.steps_per_call = 1
    c.train.precision = "float32"
    # float16 only: the dynamic loss scale's start (Keras's default). Steps whose scaled
    # gradients overflow are skipped and halve it, so the first few steps may not update.
    c.train.fp16_initial_loss_scale = 2.0**15
    c.train.jit_compile = False
    # True: each view's online forward and backward run before the next view's, and the two
    # gradients are summed: the same gradient with half the activations held at once, at about
    # the same speed (docs/performance.md). No effect with model.concat_views or the nt_xent
    # objective, whose losses couple the views.
    c.train.backprop_per_view = True
    c.train.log_every_steps = 10
    c.train.deterministic_ops = False
    c.train.progress_bar = True
    # multi_worker: a worker whose heartbeats stop for this long is declared dead and the others
    # stop with an error (TF's coordination service).
    c.train.heartbeat_timeout_seconds = 30
    # multi_worker: abort any single collective that takes longer (0: no limit). TF advises this
    # for debugging hangs only: it costs a thread per collective.
    c.train.collective_timeout_seconds = 0.0

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 500
    # Also save when this many minutes have passed since the last save (0: off). With several
    # workers the chief's clock decides and all workers save at the same step.
    c.checkpoint.every_minutes = 0.0
    c.checkpoint.max_to_keep = 3

    c.export = ml_collections.ConfigDict()
    c.export.every_epochs = 0  # 0: only at the end of training.
    # False: no export when training ends (the checkpoint still holds every weight;
    # tools/export_encoder.py exports from it later).
    c.export.at_end = True

    c.eval = ml_collections.ConfigDict()
    # A labelled pair for the end-of-run kNN check; empty strings disable it.
    c.eval.knn_train = ""
    c.eval.knn_test = ""
    c.eval.knn_k = 20
    # Batches of training views (both views of each) that estimate the BatchNorm statistics of
    # the random baseline encoder at the end of a run (byol_tf.training.trainer.Trainer.evaluate_knn).
    c.eval.random_bn_batches = 16
    # > 0: also evaluate kNN on that pair every this many epochs during pretraining, logged as
    # knn_top1 / knn_top5 to metrics.jsonl and TensorBoard (byol_tf.training.monitor).
    c.eval.knn_every_epochs = 0
    c.eval.knn_temperature = 0.1
    c.eval.batch_size = 256
    # Online linear probe (byol_tf.training.probe): a linear classifier on stop_gradient(y) of view1,
    # trained during pretraining with the batch's labels by its own SGD (lr = base x global
    # batch / 256, cosine to 0 over the run), logged as probe_top1 / probe_loss. It never
    # changes the pretraining. Needs a labelled data.train.
    c.eval.online_probe = False
    c.eval.online_probe_base_lr = 0.2
    c.eval.online_probe_momentum = 0.9
    return c


def derive_steps(config: ml_collections.ConfigDict, num_examples: int) -> dict[str, int]:
    """Turns the epoch-based schedule into step counts for a dataset of `num_examples`."""
    batch = config.data.global_batch_size
    steps_per_epoch = num_examples // batch
    if steps_per_epoch < 1:
        raise ValueError(
            f"data.global_batch_size={batch} is larger than the dataset ({num_examples} examples);"
            " lower the batch size."
        )
    if config.schedule.total_steps > 0:
        total = int(config.schedule.total_steps)
    else:
        total = int(round(config.schedule.epochs * steps_per_epoch))
    if config.schedule.warmup_steps >= 0:
        warmup = int(config.schedule.warmup_steps)
    else:
        warmup = int(round(config.schedule.warmup_epochs * steps_per_epoch))
    return dict(
        steps_per_epoch=steps_per_epoch, total_steps=max(total, 1), warmup_steps=min(warmup, total)
    )


def _check_choice(value: str, choices: tuple[str, ...], field: str) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r} is not one of {', '.join(choices)}.")


def _check_probability(value: float, field: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{field}={value} must be a probability in [0, 1].")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first field whose value cannot work."""
    _check_choice(config.model.norm, ENCODER_NORMS, "model.norm")
    _check_choice(config.model.projector.norm, HEAD_NORMS, "model.projector.norm")
    _check_choice(config.model.predictor.norm, HEAD_NORMS, "model.predictor.norm")
    _check_choice(config.model.stem, ("imagenet", "cifar"), "model.stem")
    _check_choice(config.train.strategy, STRATEGIES, "train.strategy")
    _check_choice(config.train.precision, PRECISIONS, "train.precision")
    _check_choice(config.optimizer.name, OPTIMIZERS, "optimizer.name")
    _check_choice(config.objective.name, OBJECTIVES, "objective.name")
    if config.objective.temperature <= 0:
        raise ValueError(f"objective.temperature={config.objective.temperature} must be > 0.")
    for field in ("exclude_patterns", "lars_include_patterns"):
        for pattern in config.optimizer[field]:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"optimizer.{field} has a bad regex {pattern!r}: {e}.") from e
    if config.optimizer.unscoped_lr_scale <= 0:
        raise ValueError(
            f"optimizer.unscoped_lr_scale={config.optimizer.unscoped_lr_scale} must be > 0."
        )
    if config.data.global_batch_size < 1:
        raise ValueError(f"data.global_batch_size={config.data.global_batch_size} must be >= 1.")
    mean, std = tuple(config.data.mean), tuple(config.data.std)
    if (mean or std) and not (len(mean) == len(std) == 3 and min(std) > 0):
        raise ValueError(
            f"data.mean={mean} and data.std={std} should be three values each (RGB, std > 0), "
            "or both () to compute them from the training images."
        )
    if config.train.fp16_initial_loss_scale <= 0:
        raise ValueError(
            f"train.fp16_initial_loss_scale={config.train.fp16_initial_loss_scale} must be > 0."
        )
    if config.eval.random_bn_batches < 1:
        raise ValueError(f"eval.random_bn_batches={config.eval.random_bn_batches} must be >= 1.")
    if config.train.steps_per_call < 1:
        raise ValueError(f"train.steps_per_call={config.train.steps_per_call} must be >= 1.")
    if config.checkpoint.every_steps < 1:
        raise ValueError(
            f"checkpoint.every_steps={config.checkpoint.every_steps} must be >= 1 (use a large "
            "value to rely on checkpoint.every_minutes)."
        )
    if config.checkpoint.every_minutes < 0:
        raise ValueError(
            f"checkpoint.every_minutes={config.checkpoint.every_minutes} must be >= 0."
        )
    if not 0.0 <= config.ema.tau_base <= 1.0:
        raise ValueError(f"ema.tau_base={config.ema.tau_base} must be in [0, 1].")
    _check_choice(config.ema.tau_schedule, TAU_SCHEDULES, "ema.tau_schedule")
    _validate_recipe_levers(config)
    if config.eval.knn_every_epochs > 0 and not (config.eval.knn_train and config.eval.knn_test):
        raise ValueError(
            f"eval.knn_every_epochs={config.eval.knn_every_epochs} needs a labelled pair in "
            "eval.knn_train and eval.knn_test (e.g. synthetic:train and synthetic:test)."
        )
    if config.eval.online_probe_base_lr <= 0:
        raise ValueError(
            f"eval.online_probe_base_lr={config.eval.online_probe_base_lr} must be > 0."
        )
    if not 0.0 <= config.eval.online_probe_momentum < 1.0:
        raise ValueError(
            f"eval.online_probe_momentum={config.eval.online_probe_momentum} must be in [0, 1)."
        )
    for view in ("view1", "view2"):
        v = config.augment[view]
        for name in ("crop_p", "flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            _check_probability(v[name], f"augment.{view}.{name}")


def _validate_recipe_levers(config: ml_collections.ConfigDict) -> None:
    opt, schedule = config.optimizer, config.schedule
    if opt.trust_coefficient <= 0:
        raise ValueError(f"optimizer.trust_coefficient={opt.trust_coefficient} must be > 0.")
    if opt.predictor_lr_multiplier <= 0:
        raise ValueError(
            f"optimizer.predictor_lr_multiplier={opt.predictor_lr_multiplier} must be > 0."
        )
    if opt.name != "lars":
        # Keras's SGD has one learning rate and no trust ratio: these levers would be ignored.
        for field, inert in (
            ("clip_local_lr", False),
            ("predictor_lr_multiplier", 1.0),
            ("predictor_lr_decay", True),
        ):
            if opt[field] != inert:
                raise ValueError(
                    f"optimizer.{field}={opt[field]} needs optimizer.name='lars' "
                    f"(got {opt.name!r}); set it to {inert} or use 'lars'."
                )
    if schedule.warmup_steps < -1 or schedule.warmup_steps != int(schedule.warmup_steps):
        raise ValueError(
            f"schedule.warmup_steps={schedule.warmup_steps} must be a whole number >= 0 "
            "(or -1 to use schedule.warmup_epochs)."
        )
    if schedule.warmup_epochs < 0:
        raise ValueError(f"schedule.warmup_epochs={schedule.warmup_epochs} must be >= 0.")


def load_config(path: str) -> ml_collections.ConfigDict:
    """Loads `configs/<name>.py[:arg]` as the command-line tools do, for use from Python."""
    import importlib.util
    import os

    file, _, arg = path.partition(":")
    if not os.path.exists(file):
        raise FileNotFoundError(f"Config file {file!r} does not exist.")
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(file))[0], file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
