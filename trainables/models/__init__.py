"""Models of the project, all following one protocol (binding; stated below).

Model protocol
--------------
All models take PIXEL-space input x in [0,1] and do input normalization inside, so eps is in pixel
units. Images are (N, C, H, W) tensors, vector data (N, D). float32 inputs, int64 labels.

- `model(x) -> logits (N, classes)`; `model.features(x) -> Phi(x)` (encoder output), and
  `model(x) == model.head(model.features(x))`.
- `model.normalize`: an nn.Module with buffers `mean`, `std` (broadcastable to one sample:
  shape (C,1,1) for images, (1,) for vector data); computes (x - mean) / std.
  ||N||_{p->p} = 1/min(std).
- `model.head`: nn.Linear (classes x features), bias allowed. Never counted as an encoder layer.
- `model.encoder_layers() -> list[tuple[str, nn.Module]]`: the weight layers of the encoder in
  forward order, named as in model.named_modules(). Each has `.weight`: the EFFECTIVE weight
  tensor, 2-D (out, in) for linear-like layers, 4-D (C_out, C_in, kh, kw) for conv-like layers
  (low-rank layers expose `.weight` as a property computed from their factors); conv-like layers
  also have `.stride` and `.padding` (tuples). Metrics read these; compression modifies them.
- `model.lipschitz_upper(p, op_norm) -> float` with p in {"linf", "l2"} and
  `op_norm(module, p) -> float` a callable (supplied by trainables.metrics) that returns a rigorous
  upper bound of a layer's p->p operator norm for Linear / Conv2d / low-rank / BatchNorm2d
  modules. Returns an upper bound on the Lipschitz constant of model.features from pixel input in
  norm p, INCLUDING the normalization (1/min(std)); ReLU/max-pool/avg-pool are 1-Lipschitz in both
  norms (non-overlapping or standard pools); residual x + F(x): 1 + ||F|| (projection shortcut:
  ||S|| + ||F||). For the bias-free FCN it is exactly (1/min std) * prod_l op_norm(W_l).
  BatchNorm is assumed in eval mode (a fixed diagonal map); op_norm receives BatchNorm2d modules.
- `model.input_shape` (tuple), `model.num_classes` (int).
- `build_model(name, *, input_shape, num_classes, mean, std, width=256, depth=1, rank=None,
  head_bias=True)`,
  name in {"fcn", "cnn", "resnet18"}. Deterministic under torch.manual_seed.

Choices made here
-----------------
- `width` is the encoder output dimension (Phi's size) for every model. FCN: `depth` hidden layers
  of `width`. CNN: conv channels (width/4, width/2, width). ResNet-18: stage channels (width/8,
  width/4, width/2, width), so width=512 is the usual ResNet-18. `depth` is FCN-only.
- `rank`: an encoder layer is factorized iff rank < min(rows, cols) of its matrix (for convs
  (C_out, C_in*kh*kw)); otherwise the cap constrains nothing and the layer stays plain. So the FCN's
  hidden width x width layers are always factorized, and its first layer when rank < input dim.
  LowRankLinear: factors u (out x r), v (r x in), weight = u @ v. LowRankConv2d: r filters of
  kh x kw (v: r x C_in x kh x kw) then 1x1 to C_out (u: C_out x r). The head is never factorized.
- Low-rank layers also offer `assign_weight(w)`, `zero_rows_(mask)` and `scale_(factor)`, which
  trainables.compression uses to edit them in place.
- Encoder layers are bias-free (convs are followed by BatchNorm) and He-initialized; low-rank
  factors are initialized so that u @ v has the same entry variance.
"""

from trainables.models._base import EncoderClassifier
from trainables.models._lowrank import LowRankConv2d, LowRankLinear
from trainables.models._normalize import Normalize
from trainables.models._registry import MODEL_BUILDERS, build_model
from trainables.models.cnn import CNN
from trainables.models.fcn import FCN
from trainables.models.resnet import BasicBlock, ResNet18

__all__ = [
    "CNN",
    "FCN",
    "MODEL_BUILDERS",
    "BasicBlock",
    "EncoderClassifier",
    "LowRankConv2d",
    "LowRankLinear",
    "Normalize",
    "ResNet18",
    "build_model",
]
