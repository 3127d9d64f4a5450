"""Names shared by several layers, in a leaf module that imports nothing (no torch): the trainer
writes them, the results schema types them, the report reads them."""

# One record per epoch in a run's history (train.TrainResult.history, the results column `history`):
# losses in nats per example (val_* on the validation split when the dataset has one, else test_* on
# the test split; both single-sample -ELBO with beta = 1; the other split's fields are null), seconds
# since training began.
HISTORY_FIELDS = (
    "epoch",
    "kl_weight",
    "lr",
    "train_loss",
    "train_recon",
    "train_kl",
    "test_loss",
    "test_recon",
    "test_kl",
    "val_loss",
    "val_recon",
    "val_kl",
    "seconds",
)


def selection_loss(record: dict) -> tuple[str, float]:
    """The held-out split an epoch record was measured on ("validation" or "test") and its
    single-sample -ELBO (nats per example): what a pruner, a learning curve and early stopping read."""
    if record.get("val_loss") is not None:
        return "validation", float(record["val_loss"])
    return "test", float(record["test_loss"])
