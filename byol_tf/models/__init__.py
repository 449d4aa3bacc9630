"""Models: ResNet encoders, the encoder wrapper, MLP heads and the BYOL towers."""

from byol_tf.models.encoder import Encoder
from byol_tf.models.heads import MLPHead
from byol_tf.models.resnet import DEPTHS, ResNet, WSConv2D
from byol_tf.models.towers import (
    ENCODER_NAMES,
    OnlineNetwork,
    TargetNetwork,
    build_backbone,
    build_encoder,
    build_towers,
    copy_online_to_target,
    fresh_encoder_like,
    target_pairs,
)

__all__ = [
    "DEPTHS",
    "ENCODER_NAMES",
    "Encoder",
    "MLPHead",
    "OnlineNetwork",
    "ResNet",
    "TargetNetwork",
    "WSConv2D",
    "build_backbone",
    "build_encoder",
    "build_towers",
    "copy_online_to_target",
    "fresh_encoder_like",
    "target_pairs",
]
