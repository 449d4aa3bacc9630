"""The online (encoder -> projector -> predictor) and target (encoder -> projector) towers.

`build_towers` makes both from a config, or around a user's Keras model, calls each once so
every sublayer is built (Keras 3 can leave sublayers of a subclassed model unbuilt after
`build(shape)`), and copies the online weights into the target.
"""

from __future__ import annotations

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from byol_tf.models.encoder import Encoder
from byol_tf.models.heads import MLPHead
from byol_tf.models.resnet import DEPTHS, ResNet

ENCODER_NAMES = tuple(f"resnet{d}" for d in DEPTHS)


@keras.saving.register_keras_serializable(package="byol_tf")
class OnlineNetwork(keras.Model):
    def __init__(
        self, encoder: keras.Model, projector: keras.Model, predictor: keras.Model, **kwargs
    ):
        kwargs.setdefault("name", "online")
        super().__init__(**kwargs)
        self.encoder, self.projector, self.predictor = encoder, projector, predictor

    def call(self, images, training=False):
        y = self.encoder(images, training=training)
        z = self.projector(y, training=training)
        return {
            "representation": y,
            "projection": z,
            "prediction": self.predictor(z, training=training),
        }


@keras.saving.register_keras_serializable(package="byol_tf")
class TargetNetwork(keras.Model):
    def __init__(self, encoder: keras.Model, projector: keras.Model, **kwargs):
        kwargs.setdefault("name", "target")
        super().__init__(**kwargs)
        self.encoder, self.projector = encoder, projector

    def call(self, images, training=False):
        y = self.encoder(images, training=training)
        return {"representation": y, "projection": self.projector(y, training=training)}


def _synchronized(config: ml_collections.ConfigDict) -> bool:
    """Whether BatchNorm is synchronised, one switch for the whole network (encoder and heads):
    always with "sync_batch"; with "batch", when `model.sync_batchnorm` and the strategy in
    scope has several replicas (outside a scope, TF's default strategy has one)."""
    m, replicas = config.model, tf.distribute.get_strategy().num_replicas_in_sync
    # model.remat re-runs each block in a nested function of the backward pass, where a
    # cross-replica all-reduce cannot run (tf.distribute's merge_call).
    remat_apart = m.get("remat", False) and replicas > 1
    if m.norm == "sync_batch":
        if remat_apart:
            raise ValueError(
                "model.norm='sync_batch' with model.remat on several replicas: the "
                "recomputation cannot synchronise BatchNorm. Use model.norm='batch' with "
                "model.sync_batchnorm=false, or model.remat=false."
            )
        return True
    if m.norm != "batch" or not m.get("sync_batchnorm", True) or replicas == 1:
        return False
    if remat_apart:
        logging.warning(
            "model.remat on %d replicas: BatchNorm keeps per-replica statistics (the "
            "recomputation cannot synchronise them). Set model.sync_batchnorm=false to say so, "
            "or model.remat=false to synchronise.",
            replicas,
        )
        return False
    return True


def build_backbone(config: ml_collections.ConfigDict) -> ResNet:
    name = config.model.encoder
    if name not in ENCODER_NAMES:
        raise ValueError(
            f"model.encoder={name!r} is not a known encoder; use one of {', '.join(ENCODER_NAMES)}, "
            "or pass your own keras.Model as `encoder=`."
        )
    m = config.model
    return ResNet(
        depth=int(name[len("resnet") :]),
        width_multiplier=m.width_multiplier,
        base_width=m.base_width,
        stem=m.stem,
        # bn_free_init trains a norm-free ResNet; the Trainer initialises its affine layers.
        norm="affine"
        if m.norm == "bn_free_init"
        else ("sync_batch" if _synchronized(config) else m.norm),
        bn_momentum=m.bn_momentum,
        bn_epsilon=m.bn_epsilon,
        gn_groups=m.gn_groups,
        zero_init_residual=m.zero_init_residual,
        remat=m.remat,
        name="resnet",
    )


def build_encoder(config: ml_collections.ConfigDict) -> Encoder:
    """The configured ResNet behind the input normalisation."""
    return Encoder(build_backbone(config), mean=config.data.mean, std=config.data.std)


def _head(config: ml_collections.ConfigDict, head: ml_collections.ConfigDict, name: str) -> MLPHead:
    return MLPHead(
        head.hidden_dim,
        head.output_dim,
        head.norm,
        config.model.bn_momentum,
        config.model.bn_epsilon,
        synchronized=_synchronized(config),
        name=name,
    )


def _user_encoder(
    config, model: keras.Model, hidden_layer: str | None, name: str = "encoder"
) -> Encoder:
    if isinstance(model, Encoder):
        if hidden_layer is not None:
            raise ValueError(
                f"hidden_layer={hidden_layer!r} cannot cut an `Encoder`; pass the plain "
                "keras.Model with hidden_layer, or an Encoder already cut where you want it."
            )
        return model
    return Encoder.from_keras_model(
        model, hidden_layer, config.data.mean, config.data.std, name=name
    )


def fresh_encoder_like(
    config: ml_collections.ConfigDict, encoder: keras.Model, user_model: keras.Model | None = None
) -> Encoder:
    """A new, randomly initialised encoder of the same architecture as `encoder`."""
    if user_model is None:
        return build_encoder(config)
    clone = keras.models.clone_model(encoder.backbone)  # new layers, new initial weights
    return Encoder(clone, mean=encoder.mean, std=encoder.std)


def build_towers(
    config: ml_collections.ConfigDict,
    encoder: keras.Model | None = None,
    hidden_layer: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> tuple[OnlineNetwork, TargetNetwork]:
    """Online and target towers with identical initial weights and separate variables.

    Call inside `strategy.scope()` when training with a strategy.
    """
    if encoder is None:
        online_encoder, target_encoder = build_encoder(config), build_encoder(config)
    else:
        if config.model.get("remat", False):
            raise ValueError(
                "model.remat recomputes the residual blocks of byol-tf's own ResNets; it does "
                "not apply to an encoder you pass in. Leave model.remat=False with your own model."
            )
        online_encoder = _user_encoder(config, encoder, hidden_layer)
        target_encoder = Encoder(
            keras.models.clone_model(online_encoder.backbone),
            mean=online_encoder.mean,
            std=online_encoder.std,
        )
    online = OnlineNetwork(
        online_encoder,
        _head(config, config.model.projector, "projector"),
        _head(config, config.model.predictor, "predictor"),
    )
    target = TargetNetwork(target_encoder, _head(config, config.model.projector, "projector"))
    size = config.data.image_size
    probe = tf.zeros((2,) + tuple(input_shape or (size, size, 3)))
    online(probe, training=False)
    target(probe, training=False)
    copy_online_to_target(online, target)
    return online, target


def _paired(online_vars, target_vars) -> list[tuple]:
    if len(online_vars) != len(target_vars):
        raise ValueError(
            f"Online and target towers differ: {len(online_vars)} vs {len(target_vars)} variables."
        )
    for o, t in zip(online_vars, target_vars):
        if tuple(o.shape) != tuple(t.shape):
            raise ValueError(
                f"Online {o.path} {tuple(o.shape)} does not match target {t.path} {tuple(t.shape)}."
            )
    return list(zip(online_vars, target_vars))


def target_pairs(online: OnlineNetwork, target: TargetNetwork) -> list[tuple]:
    """(online, target) pairs of the trainable encoder and projector weights, in order."""
    return _paired(
        online.encoder.trainable_variables + online.projector.trainable_variables,
        target.encoder.trainable_variables + target.projector.trainable_variables,
    )


def copy_online_to_target(online: OnlineNetwork, target: TargetNetwork) -> None:
    """Copies every encoder and projector weight, BatchNorm moving statistics included."""
    for o, t in _paired(
        online.encoder.weights + online.projector.weights,
        target.encoder.weights + target.projector.weights,
    ):
        t.assign(o)
