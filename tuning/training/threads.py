"""How many CPU threads TensorFlow may use in this process.

Owns the one place that sets TensorFlow's thread pools, for `--threads` in a
run and for each local worker's share (`tuning.distributed.cores`). It must
run before TensorFlow starts its first operation.
"""

from __future__ import annotations

import tensorflow as tf


def use_threads(threads: int) -> None:
    """Caps both of TensorFlow's thread pools (within an operation and across operations) at `threads`.

    Args:
        threads: CPU threads; at least 1.
    """
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
