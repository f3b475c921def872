"""When a run's validation metrics sit at chance while its training metrics do not: the definition,
and the plain-words warning a run shows for it (status.json `warning`, a metrics.jsonl note, and
`warning: ...` on the CLI's stderr).

That pattern means the model learned something on its training batches that does not carry over
to validation in inference mode: statistics that do not match the weights (BatchNorm), a
validation set unlike the training set, or labels that do not line up.
"""

from __future__ import annotations

import math

CHANCE_AUC_MARGIN = 0.1  # a validation AUC at most 0.5 + this is no better than chance
LEARNED_AUC = 0.7  # a training AUC at least this means the model learned something on its batches


def auc_at_chance(auc: float | None) -> bool:
    """True when an AUC is no better than chance: at most 0.5 + CHANCE_AUC_MARGIN (0.6).

    AUCs below 0.5 count too: a ranking that is inverted on validation but not in training is the
    same failure. A missing or NaN AUC (one class only) is not judged (False).
    """
    if auc is None or math.isnan(auc):
        return False
    return auc <= 0.5 + CHANCE_AUC_MARGIN


def chance_warning(
    train_auc: float | None,
    val_auc: float | None,
    *,
    val_accuracy: float | None = None,
    majority_rate: float | None = None,
) -> str | None:
    """A plain-words warning when validation sits at chance while training does not, else None.

    "Validation at chance" = `auc_at_chance(val_auc)`; "training not at chance" = the training
    AUC reached LEARNED_AUC (0.7). The validation accuracy and the majority rate (the share of the
    larger class in the validation set, what always answering that class scores) only enrich
    the wording.
    """
    if not auc_at_chance(val_auc) or train_auc is None or math.isnan(train_auc) or train_auc < LEARNED_AUC:
        return None
    text = (
        f"Validation is at chance: the best validation AUC is {val_auc:.2f} (0.5 = guessing) while "
        f"the training AUC reached {train_auc:.2f}."
    )
    if val_accuracy is not None and majority_rate is not None:
        text += (
            f" Validation accuracy {val_accuracy:.2f} vs {majority_rate:.2f} for always answering "
            "the larger class."
        )
    return text + (
        " What the model learned on its training batches does not carry over to validation: "
        "do not use this model's predictions; check that the validation set resembles the "
        "training set and that its labels are right."
    )
