"""Relation classifier: encoder -> entity pooling -> dropout -> linear, with CE/focal loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spanfirst.config import ReConfig
from spanfirst.re.pooling import EntityPooler


@dataclass
class ReOutput:
    logits: torch.Tensor  # (B, C)
    loss: torch.Tensor | None = None


class ReModel(nn.Module):
    """``encoder`` is the only submodule saved as the backbone; everything else is a head.

    Class weights and focal alpha only shape the loss, so they are non-persistent buffers: a
    checkpoint reloads without knowing the training label counts.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, cfg: ReConfig, dropout: float = 0.1,
                 class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 type_prior: torch.Tensor | None = None) -> None:
        """``type_prior`` (``re.type_prior``): (T + 1, T + 1, C) log p(relation | subject type,
        object type), the last row and column for types not seen in training."""
        super().__init__()
        self.encoder = encoder
        self.num_labels = num_labels
        hidden = encoder.config.hidden_size
        self.pooler = EntityPooler(cfg.pooling, hidden, cfg.use_cls)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.pooler.out_size, num_labels)
        self.focal_gamma = cfg.focal_gamma
        self.label_smoothing = float(label_smoothing)
        alpha = cfg.focal_alpha
        if isinstance(alpha, list):
            if len(alpha) != num_labels:
                raise ValueError(f"re.focal_alpha: {len(alpha)} weights for {num_labels} labels")
            self.register_buffer("focal_alpha", torch.tensor(alpha, dtype=torch.float), persistent=False)
            self.alpha_scalar = None
        else:
            self.focal_alpha = None
            self.alpha_scalar = alpha
        weights = class_weights.float() if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)
        if cfg.type_prior and type_prior is None:
            raise ValueError("re.type_prior needs the prior's table (ReTask.type_prior, or a checkpoint's)")
        # saved with the heads: a checkpoint decodes without the training data
        self.register_buffer("type_prior", type_prior.float() if cfg.type_prior else None)
        self.prior_weight = nn.Parameter(torch.ones(())) if cfg.type_prior else None

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, subject_span: torch.Tensor,
               object_span: torch.Tensor, subject_marker: torch.Tensor, object_marker: torch.Tensor,
               subject_type: torch.Tensor | None = None, object_type: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        features = self.pooler(hidden, subject_span, object_span, subject_marker, object_marker)  # (B, F)
        logits = self.classifier(self.dropout(features)).float()  # (B, C)
        if self.type_prior is not None:  # what the sentence adds to the type pair's own odds
            logits = logits + self.prior_weight * self.type_prior[subject_type, object_type]
        return logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, subject_span: torch.Tensor,
                object_span: torch.Tensor, subject_marker: torch.Tensor, object_marker: torch.Tensor,
                subject_type: torch.Tensor | None = None, object_type: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ReOutput:
        logits = self.logits(input_ids, attention_mask, subject_span, object_span, subject_marker, object_marker,
                             subject_type, object_type)
        loss = self.compute_loss(logits, labels) if labels is not None else None
        return ReOutput(logits, loss)

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from spanfirst.losses import focal_cross_entropy

        alpha = self.focal_alpha if self.focal_alpha is not None else self.alpha_scalar
        return focal_cross_entropy(
            logits, labels, gamma=self.focal_gamma, alpha=alpha, label_smoothing=self.label_smoothing,
            class_weights=self.class_weights,
        )
