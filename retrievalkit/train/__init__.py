"""Fine-tuning from mined tuples: losses, batches (one/two-pass), hard-negative mining, the training loop,
and the import of cirtorch's training data.

Public API::

    from retrievalkit.train import TrainConfig, train
    train("tuples.h5", "model.pt", TrainConfig(loss="recall-k", batch_size=32, epochs=5))
"""

from retrievalkit.train.batch import Batch, batch_backward, build_batch, embed, make_loss, pair_keys
from retrievalkit.train.cirtorch_import import cirtorch_to_tuples, import_cirtorch
from retrievalkit.train.loop import TrainConfig, log_path, state_path, train
from retrievalkit.train.losses import LOSSES, contrastive_loss, recall_k_loss, similarity_mixup, triplet_loss
from retrievalkit.train.mining import mine_hard_negatives

__all__ = ["Batch", "LOSSES", "TrainConfig", "batch_backward", "build_batch", "cirtorch_to_tuples",
           "contrastive_loss", "embed", "import_cirtorch", "log_path", "make_loss", "mine_hard_negatives",
           "pair_keys", "recall_k_loss", "similarity_mixup", "state_path", "train", "triplet_loss"]
