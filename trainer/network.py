"""The detector: DLA-34 backbone, DLA-up / IDA-up neck and CenterNet heads, in plain torch.

Only Conv-BatchNorm-ReLU blocks, max-pooling and depthwise transposed convolutions (initialised
as bilinear upsampling) are used, so the network exports to ONNX with standard operators.

Contract (docs/ARCHITECTURE.md):
    input  ``image``   float32 [N, 1, H, W], values = uint8 / 255, H and W multiples of 32;
    output ``heatmap`` LOGITS  [N, 1, H/4, W/4],
           ``offset``          [N, 2, H/4, W/4] (x then y, in heatmap cells),
           ``size``            [N, 2, H/4, W/4] (optional; diameter in network pixels, x then y).
``forward`` returns a tuple in that order; ``forward_features`` gives the stride-4 neck features
used for distillation. ``width`` scales every channel count: 1.0 is DLA-34, 0.25 is the narrow
variant that trains in seconds on a CPU. ``test_flips`` (1, 2 or 4) makes ``forward`` in eval mode
average the heatmap logits over the image and its mirror images (left-right; 4: also up-down and
both), each flipped back cell for cell (H and W are multiples of 32, so stride-4 cells map onto
cells); offsets and sizes come from the unflipped image. Training-mode passes never flip.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn



@dataclass(frozen=True)
class Level:
    """One level of the DLA-34 backbone: a conv stage or an aggregation tree of ``depth`` levels."""

    kind: str          # "conv" (3x3 Conv-BN-ReLU) or "tree" (hierarchical aggregation of BasicBlocks)
    depth: int         # tree depth (conv: 1)
    channels: int      # output channels at width 1.0
    stride: int        # relative to the previous level (the level's output stride is the product)
    level_root: bool   # tree: its root also aggregates the level's (downsampled) input


# DLA-34 (Yu et al. 2018; the CenterNet detector) after a 7x7 base conv of 16 channels at stride 1
DLA34 = (Level("conv", 1, 16, 1, False), Level("conv", 1, 32, 2, False), Level("tree", 1, 64, 2, False),
         Level("tree", 2, 128, 2, True), Level("tree", 2, 256, 2, True), Level("tree", 1, 512, 2, True))
DLA34_CHANNELS = tuple(level.channels for level in DLA34)
HEATMAP_BIAS = -2.19  # sigmoid(-2.19) ~ 0.1: the CenterNet prior for the heatmap head
FIRST_LEVEL = 2  # the neck's output level: stride 4 = 2 ** FIRST_LEVEL (levels 1..FIRST_LEVEL halve)
MAX_WIDTH = 2.0        # channel multiplier (1.0 = DLA-34; 2.0 has about 4 x its weights)
MAX_HEAD_CONV = 2048
# flip axes of the [N, C, H, W] image averaged at test time, by test_flips: none, x, x and y
TEST_FLIP_DIMS = {1: (), 2: ((3,),), 4: ((3,), (2,), (2, 3))}


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of one detector: channel width multiplier, head width and the optional size head."""

    width: float = 1.0
    head_conv: int = 256
    with_size: bool = False
    test_flips: int = 1   # heatmap averaged over this many mirror images in eval mode (1, 2, 4)

    @property
    def name(self) -> str:
        """``dla34`` at width 1, else ``dla34-w<width>`` (the narrow variant is ``dla34-w0.25``)."""
        return "dla34" if self.width == 1.0 else f"dla34-w{self.width:g}"

    def __post_init__(self) -> None:
        # bounded so that a damaged model file is refused before gigabytes of weights are allocated
        if not 0 < float(self.width) <= MAX_WIDTH:
            raise ValueError(f"width must lie in (0, {MAX_WIDTH:g}], got {self.width!r}")
        if not 1 <= int(self.head_conv) <= MAX_HEAD_CONV:
            raise ValueError(f"head_conv must lie in [1, {MAX_HEAD_CONV}], got {self.head_conv!r}")
        if self.test_flips not in TEST_FLIP_DIMS:
            raise ValueError(f"test_flips must be one of {sorted(TEST_FLIP_DIMS)}, got {self.test_flips!r}")

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the six DLA levels after the width multiplier (at least 4 each)."""
        return tuple(max(4, int(round(c * self.width))) for c in DLA34_CHANNELS)

    @property
    def head_channels(self) -> int:
        """Channels of the 3x3 convolution in each head after the width multiplier."""
        return max(8, int(round(self.head_conv * self.width)))

    @property
    def feature_channels(self) -> int:
        """Channels of the stride-4 neck output."""
        return self.channels[FIRST_LEVEL]

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs of ``forward``, in order."""
        return ("heatmap", "offset", "size") if self.with_size else ("heatmap", "offset")

    def to_dict(self) -> dict:
        """JSON-serialisable form (stored in model files), with the derived ``name`` for readers
        (``test_flips`` only when not 1, so files without test-time flips read as before)."""
        data = {**asdict(self), "name": self.name}
        if self.test_flips == 1:
            del data["test_flips"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "NetworkConfig":
        """Inverse of ``to_dict``; unknown keys are an error. ``name`` is derived from the width, so
        the names older files carry (``dla34-narrow`` for width 0.25) are accepted and not kept."""
        data = dict(data)
        name = data.pop("name", None)
        if name is not None and not str(name).startswith("dla34"):
            raise ValueError(f"unknown network {name!r}")
        return cls(**data)

    @classmethod
    def narrow(cls, with_size: bool = False) -> "NetworkConfig":
        """The narrow variant (quarter width) for CPU tests and quick experiments."""
        return cls(width=0.25, head_conv=256, with_size=with_size)


class ConvBNReLU(nn.Sequential):
    """Conv(k x k) -> BatchNorm -> ReLU, 'same' padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convolutions; the residual is given by the caller (DLA style)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        residual = x if residual is None else residual
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 conv over the concatenated children, plus the first child (residual)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *children: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(torch.cat(children, 1))))


class Tree(nn.Module):
    """Hierarchical deep aggregation tree of ``levels`` levels (DLA paper, Yu et al. 2018)."""

    def __init__(self, levels: int, c_in: int, c_out: int, stride: int = 1,
                 level_root: bool = False, root_dim: int = 0):
        super().__init__()
        root_dim = root_dim or 2 * c_out
        if level_root:
            root_dim += c_in
        if levels == 1:
            self.tree1 = BasicBlock(c_in, c_out, stride)
            self.tree2 = BasicBlock(c_out, c_out, 1)
            self.root = Root(root_dim, c_out)
        else:
            self.tree1 = Tree(levels - 1, c_in, c_out, stride, root_dim=0)
            self.tree2 = Tree(levels - 1, c_out, c_out, 1, root_dim=root_dim + c_out)
        self.levels = levels
        self.level_root = level_root
        self.downsample = nn.MaxPool2d(stride, stride) if stride > 1 else None
        self.project = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
                        if c_in != c_out else None)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None,
                children: list[torch.Tensor] | None = None) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        residual = self.project(bottom) if self.project is not None else bottom
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            return self.root(self.tree2(x1), x1, *children)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA34(nn.Module):
    """DLA-34 backbone for one input channel, built from ``levels`` (``DLA34``) with ``channels``
    (after the width multiplier); returns every level's output (strides 1..32)."""

    def __init__(self, channels: tuple[int, ...], levels: tuple[Level, ...] = DLA34):
        super().__init__()
        self.base_layer = ConvBNReLU(1, channels[0], 7)
        self.names = []
        c_in = channels[0]
        for i, (level, c_out) in enumerate(zip(levels, channels)):
            if level.kind == "conv":
                module = ConvBNReLU(c_in, c_out, 3, stride=level.stride)
            else:
                module = Tree(level.depth, c_in, c_out, level.stride, level_root=level.level_root)
            self.add_module(f"level{i}", module)   # state-dict keys level0.* .. level5.*
            self.names.append(f"level{i}")
            c_in = c_out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.base_layer(x)
        outs = []
        for name in self.names:
            x = getattr(self, name)(x)
            outs.append(x)
        return outs


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Depthwise transposed convolution initialised to bilinear upsampling by ``factor`` (trainable)."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                            groups=channels, bias=False)
    k = 2 * factor
    centre = (k - 1) / 2 if k % 2 == 1 else factor - 0.5
    ramp = 1 - torch.abs(torch.arange(k, dtype=torch.float32) - centre) / factor
    with torch.no_grad():
        up.weight.copy_((ramp[:, None] * ramp[None, :]).expand(channels, 1, k, k))
    return up


class IDAUp(nn.Module):
    """Iterative deep aggregation: project, upsample and merge layers[start+1:end] into layers[start]."""

    def __init__(self, c_out: int, channels: list[int], factors: list[int]):
        super().__init__()
        self.proj = nn.ModuleList()
        self.up = nn.ModuleList()
        self.node = nn.ModuleList()
        for c, f in zip(channels[1:], factors[1:]):
            self.proj.append(ConvBNReLU(c, c_out))
            self.up.append(bilinear_upsampler(c_out, int(f)))
            self.node.append(ConvBNReLU(c_out, c_out))

    def forward(self, layers: list[torch.Tensor], start: int, end: int) -> None:
        """Update ``layers`` in place: layers[i] = node(up(proj(layers[i])) + layers[i - 1])."""
        for k, i in enumerate(range(start + 1, end)):
            layers[i] = self.node[k](self.up[k](self.proj[k](layers[i])) + layers[i - 1])


class DLAUp(nn.Module):
    """The DLA-up neck: repeated IDA-up from the deepest level towards ``first`` level."""

    def __init__(self, first: int, channels: list[int]):
        super().__init__()
        self.first = first
        chans = list(channels)
        in_chans = list(channels)
        scales = [2 ** i for i in range(len(channels))]
        self.ida = nn.ModuleList()
        for i in range(len(chans) - 1):
            j = -i - 2
            self.ida.append(IDAUp(chans[j], in_chans[j:], [s // scales[j] for s in scales[j:]]))
            scales[j + 1:] = [scales[j]] * len(scales[j + 1:])
            in_chans[j + 1:] = [chans[j]] * len(in_chans[j + 1:])

    def forward(self, layers: list[torch.Tensor]) -> list[torch.Tensor]:
        layers = list(layers)
        out = [layers[-1]]
        for i, ida in enumerate(self.ida):
            ida(layers, len(layers) - i - 2, len(layers))
            out.insert(0, layers[-1])
        return out


HEAD_INIT_STD = 0.001  # CenterNet's fill_fc_weights for the head convolutions


def head(c_in: int, c_mid: int, c_out: int, bias: float = 0.0) -> nn.Sequential:
    """CenterNet head: Conv3x3(c_mid) -> ReLU -> Conv1x1(c_out), final bias set to ``bias``."""
    seq = nn.Sequential(nn.Conv2d(c_in, c_mid, 3, padding=1, bias=True), nn.ReLU(inplace=True),
                        nn.Conv2d(c_mid, c_out, 1, bias=True))
    for conv in (seq[0], seq[-1]):
        nn.init.normal_(conv.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(conv.bias)
    nn.init.constant_(seq[-1].bias, bias)
    return seq


def init_backbone_weights(module: nn.Module) -> None:
    """Explicit initialisation of timm's / CenterNet's dla.py: every Conv2d He-normal
    (std sqrt(2 / (k * k * out_channels)), fan-out), every BatchNorm weight 1 and bias 0.
    Transposed convolutions keep their bilinear start (``bilinear_upsampler``)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Detector(nn.Module):
    """CenterNet detector with a DLA-34 backbone (see module docstring for inputs and outputs)."""

    def __init__(self, config: NetworkConfig | None = None):
        super().__init__()
        self.config = config or NetworkConfig()
        c = self.config.channels
        self.backbone = DLA34(c)
        self.dla_up = DLAUp(FIRST_LEVEL, list(c[FIRST_LEVEL:]))
        last = len(c) - 1  # IDA-up over the stride-4, -8 and -16 outputs of DLA-up
        n_ida = last - FIRST_LEVEL
        self.ida_up = IDAUp(c[FIRST_LEVEL], list(c[FIRST_LEVEL:last]), [2 ** i for i in range(n_ida)])
        for part in (self.backbone, self.dla_up, self.ida_up):
            init_backbone_weights(part)
        f, m = self.config.feature_channels, self.config.head_channels
        self.heatmap = head(f, m, 1, HEATMAP_BIAS)
        self.offset = head(f, m, 2)
        self.size = head(f, m, 2) if self.config.with_size else None

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs of ``forward``, in order (used as ONNX output names)."""
        return self.config.output_names

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """Stride-4 neck features [N, C, H/4, W/4] (the distillation target)."""
        levels = self.dla_up(self.backbone(image))
        y = [t for t in levels[: len(self.config.channels) - 1 - FIRST_LEVEL]]
        self.ida_up(y, 0, len(y))
        return y[-1]

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Apply the heads to neck features: (heatmap logits, offset[, size])."""
        outs = (self.heatmap(features), self.offset(features))
        if self.size is not None:
            outs = outs + (self.size(features),)
        return outs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(heatmap logits [N,1,h,w], offset [N,2,h,w][, size [N,2,h,w]]) with h, w = H/4, W/4;
        in eval mode the heatmap is averaged over ``config.test_flips`` mirror images."""
        flips = () if self.training else TEST_FLIP_DIMS[self.config.test_flips]
        if not flips:
            return self.heads(self.forward_features(image))
        n = image.shape[0]
        batch = torch.cat([image] + [torch.flip(image, dims) for dims in flips])
        outs = self.heads(self.forward_features(batch))
        heat = outs[0]
        logits = heat[:n] + sum(torch.flip(heat[(k + 1) * n:(k + 2) * n], dims) for k, dims in enumerate(flips))
        return (logits / (len(flips) + 1),) + tuple(o[:n] for o in outs[1:])

    def forward_all(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Neck features and head outputs in one pass (training with distillation)."""
        feats = self.forward_features(image)
        return feats, self.heads(feats)


def build_detector(config: NetworkConfig | None = None) -> Detector:
    """A freshly initialised detector for ``config`` (uses torch's global RNG: seed it first)."""
    return Detector(config)
