"""The Bayesian CNN of Li et al. (§2.1, Fig. 1), after astroNN's ``BayesianCNNBase``.

Three 1-D convolutions (ReLU), a max pool after the third, two fully connected layers
(ReLU), then two linear heads per label: the value and the log predictive variance
(astroNN, Leung & Bovy 2019). MC dropout follows every layer except the third convolution
and the second fully connected layer (Li et al. §2.1):

    conv1 → ReLU → MCDropout → conv2 → ReLU → MCDropout → conv3 → ReLU → MaxPool
    → flatten → FC1 → ReLU → MCDropout → FC2 → ReLU → {value head, log-variance head}

The filter numbers, kernel and pool lengths and hidden sizes of Li et al.'s Fig. 1 are not
in the text we have; the defaults follow astroNN's BCNN (kernel 8, pool 4, hidden 196 and
96, He-normal initialisation, "valid" convolutions) with filters (4, 8, 8) for the third
layer the paper adds. Every one is a constructor argument saved in the checkpoint.

:class:`MCDropout` drops units in training and whenever MC sampling is switched on
(:func:`apogee_net.lamost.mc.mc_dropout`): prediction runs the T stochastic passes of Gal &
Ghahramani (2016), and :func:`~apogee_net.lamost.training.train_lamost` switches it on for
the dev loss too (``dev_mc``, as astroNN's always-on MCDropout); plain passes (dropout off)
serve the OOD score's features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from yso_labels.core.checkpoint import register_model

__all__ = ["MCDropout", "BayesianCNN", "split_output", "LAMOST_NPIX"]

#: Pixels of the 4000–8500 Å, 1 Å training grid (Li et al. §2.2).
LAMOST_NPIX = 4501


class MCDropout(nn.Module):
    """Dropout that stays on at prediction time when ``mc`` is True (astroNN MCDropout)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.mc = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=self.training or self.mc)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@register_model
class BayesianCNN(nn.Module):
    """Li et al.'s network. Input ``(batch, 1, npix)``; output ``(batch, 2·n_targets)``:
    the standardised label values, then their log predictive variances
    (see :func:`split_output`).

    ``filters``: channels of the three convolutions; ``kernel``: their length (pixels);
    ``pool``: max-pool length after the third; ``hidden``: the two fully connected sizes;
    ``dropout``: MC dropout probability.
    """

    def __init__(self, n_targets: int = 14, npix: int = LAMOST_NPIX,
                 filters: Sequence[int] = (4, 8, 8), kernel: int = 8, pool: int = 4,
                 hidden: Sequence[int] = (196, 96), dropout: float = 0.2):
        super().__init__()
        filters, hidden = [int(f) for f in filters], [int(h) for h in hidden]
        if len(filters) != 3 or len(hidden) != 2:
            raise ValueError(f"BayesianCNN has 3 convolutions and 2 hidden layers; got "
                             f"filters={filters}, hidden={hidden}")
        conv_len = npix - 3 * (kernel - 1)
        if conv_len < pool or n_targets < 1:
            raise ValueError(f"BayesianCNN: {npix} pixels are too few for kernel {kernel} and "
                             f"pool {pool} (or n_targets={n_targets} < 1)")
        self.arch_kwargs = {"n_targets": int(n_targets), "npix": int(npix), "filters": filters,
                            "kernel": int(kernel), "pool": int(pool), "hidden": hidden,
                            "dropout": float(dropout)}
        self.n_targets, self.npix = int(n_targets), int(npix)
        self.conv1 = nn.Conv1d(1, filters[0], kernel)
        self.conv2 = nn.Conv1d(filters[0], filters[1], kernel)
        self.conv3 = nn.Conv1d(filters[1], filters[2], kernel)
        self.pool = nn.MaxPool1d(pool)
        self.n_flat = filters[2] * (conv_len // pool)
        self.fc1 = nn.Linear(self.n_flat, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.value = nn.Linear(hidden[1], n_targets)
        self.log_var = nn.Linear(hidden[1], n_targets)
        self.drop1, self.drop2, self.drop3 = (MCDropout(dropout) for _ in range(3))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal weights and zero biases (astroNN's default initialiser), except the
        log-variance head, which starts at zero (predictive variance 1 in standardised
        units): a random start there lets exp(log_var) underflow and the loss diverge."""
        for layer in (self.conv1, self.conv2, self.conv3, self.fc1, self.fc2):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.kaiming_normal_(self.value.weight, nonlinearity="linear")
        nn.init.zeros_(self.value.bias)
        nn.init.zeros_(self.log_var.weight)
        nn.init.zeros_(self.log_var.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.npix:
            raise ValueError(f"BayesianCNN expects input (batch, 1, {self.npix}), "
                             f"got {tuple(x.shape)}")
        x = self.drop1(F.relu(self.conv1(x)))
        x = self.drop2(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = self.drop3(F.relu(self.fc1(x.flatten(1))))
        x = F.relu(self.fc2(x))
        return torch.cat([self.value(x), self.log_var(x)], dim=1)


def split_output(output: torch.Tensor, n_targets: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, log_var)`` from a :class:`BayesianCNN` output of shape (…, 2·n_targets)."""
    k = output.shape[-1] // 2 if n_targets is None else int(n_targets)
    if output.shape[-1] != 2 * k:
        raise ValueError(f"output has {output.shape[-1]} columns, expected 2·{k}")
    return output[..., :k], output[..., k:]
