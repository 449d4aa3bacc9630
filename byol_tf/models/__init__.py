"""Models: ResNet encoders, the encoder wrapper, MLP heads, the BYOL towers, BN removal."""

from byol_tf.models.bn_free import init_from_batchnorm, remove_batchnorm
from byol_tf.models.encoder import Encoder
from byol_tf.models.heads import MLPHead
from byol_tf.models.resnet import DEPTHS, ChannelAffine, ResNet, WSConv2D
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
    "ChannelAffine",
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
    "init_from_batchnorm",
    "remove_batchnorm",
    "target_pairs",
]
