"""Names shared by several layers, in a leaf module that imports nothing (no torch): the trainer
writes them, the results schema types them, the report reads them."""

# One record per epoch in a run's history (train.TrainResult.history, the results column `history`):
# losses in nats per example (test_* on the test split with beta = 1), seconds since training began.
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
    "seconds",
)
