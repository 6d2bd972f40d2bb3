"""Training on several machines (MultiWorkerMirroredStrategy): which worker writes where, and two
fixes to Keras's `fit` without which it fails there.

Every worker runs the same `atvg train` command with its own `TF_CONFIG`. They should share one
`--output` folder on a shared filesystem: the chief (worker 0, or the `chief` task) writes the run
there; every other worker writes its copies into `worker_<index>/` inside it, and restores from the
chief's `backup/`, so a restarted cluster resumes every worker from the same epoch and weights.
"""

from __future__ import annotations

import os

import tensorflow as tf

from atvg_tf.errors import InputError


def make_multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy of the `TF_CONFIG` cluster (call before any other TensorFlow op of the process),
    with Keras's `fit` made to work under it."""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _fix_keras_fit_for_multi_worker()
    return strategy


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Machines taking part: the workers (and chief) of a multi-worker strategy's cluster, else 1."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one worker that writes the run folder (and for single-machine strategies)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_output_dir(output_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this worker writes: `output_dir` for the chief, `output_dir/worker_<index>` for the others."""
    if is_chief(strategy):
        return output_dir
    resolver = strategy.cluster_resolver
    return os.path.join(output_dir, f"{resolver.task_type}_{resolver.task_id}")


def check_backup_is_shared(output_dir: str, run_dir: str) -> None:
    """A non-chief worker resumes from the chief's backup: refuses to start from scratch when only its own exists."""
    own, chiefs = os.path.join(run_dir, "backup"), os.path.join(output_dir, "backup")
    if run_dir != output_dir and os.path.isdir(own) and not os.path.isdir(chiefs):
        raise InputError(f"{chiefs} not found, but this worker has a backup in {own}: the workers must share the "
                         f"--output folder (a shared filesystem) to resume together; give every worker the same path on it.")


def _fix_keras_fit_for_multi_worker() -> None:
    """Replaces two steps of Keras 3's TensorFlow trainer that fail under a multi-worker strategy
    (keras-team/keras#20585, tensorflow/tensorflow#72388); other strategies are unaffected.

    - Before training, `fit` learns the input shapes by all-reducing its first batch across the
      workers, which fails for a dict of tensors ("unsupported type <class 'dict'>"): it takes this
      worker's part of the batch instead (only its shapes are used).
    - Every step's logs are averaged along an axis 0 that scalar losses do not have ("Invalid
      reduction dimension 0 for input with 0 dimensions"): they are averaged over the replicas.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_atvg_multi_worker_fix", False):
        return
    symbolic_build, reduce_per_replica = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is not None and trainer._collective_all_reduce_multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tree.map_structure(lambda value: strategy.experimental_local_results(value)[0], next(batches))
                break
            iterator = None
        return symbolic_build(self, iterator=iterator, data_batch=data_batch)

    def reduce_logs(values, strategy, reduction):
        if reduction == "auto" and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_logs
    trainer._atvg_multi_worker_fix = True
