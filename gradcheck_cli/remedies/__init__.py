"""The remedy catalogue: the ids that findings name, with what each one does.

Findings hold remedy ids and no code. Applying remedies (``gradcheck fix``) builds on these ids.
"""

from __future__ import annotations

REMEDIES: dict[str, str] = {
    "relu-swap": (
        "Replace saturating activations (Sigmoid, Tanh, ...) with ReLU, LeakyReLU or GELU and "
        "re-initialise the layers that feed them with He (Kaiming) init: with PyTorch's default "
        "init the swap alone still leaves a deep net vanishing (He et al. 2015)."
    ),
    "kaiming-init": (
        "Re-initialise Linear/Conv weights with kaiming_normal_(nonlinearity='relu') and zero "
        "biases, which keeps activation and gradient variance constant through ReLU layers "
        "(He et al. 2015). Never on a trained checkpoint."
    ),
    "xavier-init": (
        "Re-initialise weights with xavier_uniform_ (gain for tanh/sigmoid), which keeps "
        "variance through symmetric saturating activations (Glorot & Bengio 2010)."
    ),
    "residual-wrap": (
        "Wrap shape-preserving blocks as y = x + f(x), giving the gradient an identity path "
        "around every block (He et al. 2016)."
    ),
    "batchnorm": (
        "Insert BatchNorm (LayerNorm for sequences or batch size 1) after Linear/Conv layers to "
        "keep pre-activations at unit scale (Ioffe & Szegedy 2015). It is not an L2 penalty."
    ),
    "grad-clip": (
        "Clip the global gradient norm before the optimizer step: "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) (Pascanu et al. 2013)."
    ),
    "lower-lr": (
        "Lower the learning rate or add warmup. Advice only: it bounds the damage of large "
        "gradients but cures neither vanishing nor exploding gradients."
    ),
}
