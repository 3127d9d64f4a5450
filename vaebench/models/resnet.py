"""The tutorial's ResNet VAE: the convolutional VAE with a residual block in every stage.

Encoder: stem 3x3 conv to channels[0], then per stage a residual block followed by a stride-2
Conv + BN + ReLU to channels[i]. Decoder: per stage (in reverse) a transposed conv + BN + ReLU
followed by a residual block, then a 3x3 conv to the likelihood parameters. Sizes as in conv.py.
"""

from __future__ import annotations

from torch import nn

from .conv import ConvOptions, ConvVAE, conv_bn_relu, up_bn_relu
from .families import MODELS, ModelFamily


class ResBlock(nn.Module):
    """out = relu(x + BN(conv(relu(BN(conv(x)))))): two 3x3 convs, identity skip, same shape."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.BatchNorm2d(c),
        )
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.block(x))  # (B, c, H, W)


class ResNetVAE(ConvVAE):
    def stem(self, c, c0):
        return [nn.Conv2d(c, c0, 3, padding=1)], c0  # (B, channels[0], H, W)

    def down(self, c_in, c_out):
        return nn.Sequential(ResBlock(c_in), conv_bn_relu(c_in, c_out, stride=2))

    def up(self, c_in, c_out, size_in, size_out):
        return nn.Sequential(up_bn_relu(c_in, c_out, size_in, size_out), ResBlock(c_out))


def build_resnet(cfg, data_shape, likelihood, num_classes) -> ResNetVAE:
    return ResNetVAE(data_shape, cfg.latent_dim, list(cfg.channels), likelihood, cfg.spectral_norm)


MODELS.register(
    "resnet", ModelFamily(build_resnet, ConvOptions, "conv VAE with a residual block per stage", model=ResNetVAE)
)
