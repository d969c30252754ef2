"""Training a compiled sigmoid classifier under MultiWorkerMirroredStrategy with a custom loop.

``model.fit`` under MultiWorkerMirroredStrategy fails in Keras 3.15 ("Attempt to
convert a value (PerReplica...)", keras-team/keras#20585). This loop does what
fit does for our models with the public tf.distribute API: each worker reads its
own shard of the files (``distribute_datasets_from_function``), each replica
computes the binary cross-entropy of its examples averaged over the *global*
batch (``tf.nn.compute_average_loss``), the optimizer all-reduces the gradients,
and every worker therefore holds the same weights after each step. Validation
sums loss and correct counts over every worker's shard (padding marked with
label -1 so every worker runs the same number of steps) and reduces them.
Early stopping on val_loss mirrors ``keras.callbacks.EarlyStopping``.

An epoch is ``train_count // batch_size`` steps over an endlessly repeated,
reshuffled stream, so every worker runs the same number of collective steps.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from catsdogs.data.datasets import make_image_dataset

logger = logging.getLogger(__name__)

PADDING_LABEL = -1.0  # marks the validation examples that only even out the shards


def shard(paths: list, labels: np.ndarray, index: int, count: int) -> tuple[list, np.ndarray]:
    """Every ``count``-th file from ``index``: one worker's share."""
    return paths[index::count], np.asarray(labels)[index::count]


def padded_shard(paths: list, labels: np.ndarray, index: int, count: int, length: int) -> tuple[list, np.ndarray]:
    """One worker's validation share, padded to ``length`` with copies labelled PADDING_LABEL."""
    own_paths, own_labels = shard(paths, labels, index, count)
    missing = length - len(own_paths)
    return (
        list(own_paths) + [paths[0]] * missing,
        np.concatenate([own_labels.astype(np.float32), np.full(missing, PADDING_LABEL, np.float32)]),
    )


def fit_multiworker(
    model, strategy, augment, train, validation, common, cache: bool, stopping, live=None,
) -> dict[str, list[float]]:
    """Train ``model`` (compiled, built in ``strategy.scope()``) with the recipe's ``stopping`` rule (a
    :class:`catsdogs.models.recipes.Stopping`); return its history.

    ``augment`` is the per-batch training augmentation (or None); ``common.batch_size`` is the global batch.
    ``live`` (:func:`catsdogs.train.live.live_callback`, the chief's; None on the other workers) logs each
    epoch as it ends, as it does under ``model.fit``.
    """
    import keras
    import tensorflow as tf

    image_size, batch_size, seed = common.image_size, common.batch_size, common.seed
    epochs, patience = stopping.epochs, stopping.patience
    start_from_epoch, restore_best_weights = stopping.start_from_epoch, stopping.restore_best_weights

    global_batch = batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(
            f"common.batch_size={global_batch} must be a multiple of the {strategy.num_replicas_in_sync} replicas"
        )
    steps = len(train[0]) // global_batch
    if steps < 1:
        raise ValueError(f"{len(train[0])} training images are fewer than one batch of {global_batch}")
    cluster = strategy.cluster_resolver.cluster_spec()
    workers = sum(cluster.num_tasks(job) for job in ("chief", "worker") if job in cluster.jobs)
    per_worker = math.ceil(len(validation[0]) / workers)
    per_worker_batch = global_batch // workers
    validation_steps = math.ceil(per_worker / per_worker_batch)

    def train_input(context):
        paths, labels = shard(*train, context.input_pipeline_id, context.num_input_pipelines)
        batch = context.get_per_replica_batch_size(global_batch)
        return make_image_dataset(
            paths, labels, image_size, batch, shuffle=True, seed=seed + context.input_pipeline_id,
            cache=cache, augment=augment,
        ).repeat()

    def validation_input(context):
        paths, labels = padded_shard(
            *validation, context.input_pipeline_id, context.num_input_pipelines, validation_steps * per_worker_batch
        )
        return make_image_dataset(paths, labels, image_size, context.get_per_replica_batch_size(global_batch),
                                  cache=cache)

    smoothing = float(getattr(model.loss, "label_smoothing", 0.0))  # the compiled loss's (modern recipe)
    train_iterator = iter(strategy.distribute_datasets_from_function(train_input))
    validation_dataset = strategy.distribute_datasets_from_function(validation_input)
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)

    def sums(labels, probabilities):
        """Per-example loss, and the stacked [loss sum, correct count, example count] of real examples."""
        weights = tf.cast(labels >= 0, tf.float32)
        labels = tf.maximum(labels, 0.0)[:, None]
        losses = keras.losses.binary_crossentropy(labels, probabilities, label_smoothing=smoothing)
        correct = tf.cast(tf.equal(tf.cast(probabilities > 0.5, tf.float32), labels), tf.float32)[:, 0]
        return losses, tf.stack([tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights),
                                 tf.reduce_sum(weights)])

    def replica_train_step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            losses, totals = sums(labels, probabilities)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return totals

    @tf.function
    def train_step(iterator):
        totals = strategy.run(replica_train_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, totals, axis=None)

    @tf.function
    def validation_step(images, labels):
        totals = strategy.run(lambda x, y: sums(y, model(x, training=False))[1], args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, totals, axis=None)

    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best_loss, best_weights, wait = math.inf, None, 0
    for epoch in range(epochs):
        totals = sum(train_step(train_iterator).numpy() for _ in range(steps))
        validation_totals = sum(validation_step(*batch).numpy() for batch in validation_dataset)
        for prefix, (loss_sum, correct, count) in (("", totals), ("val_", validation_totals)):
            history[prefix + "loss"].append(float(loss_sum / count))
            history[prefix + "accuracy"].append(float(correct / count))
        logger.info(
            "epoch %d/%d - loss %.4f - accuracy %.4f - val_loss %.4f - val_accuracy %.4f", epoch + 1, epochs,
            *(history[key][-1] for key in ("loss", "accuracy", "val_loss", "val_accuracy")),
        )
        if live is not None:
            live.on_epoch_end(epoch, {key: values[-1] for key, values in history.items()})
        if epoch < start_from_epoch:  # like EarlyStopping(start_from_epoch=...): not watched yet
            continue
        wait += 1  # the same bookkeeping as keras.callbacks.EarlyStopping
        if history["val_loss"][-1] < best_loss:
            best_loss, wait = history["val_loss"][-1], 0
            if restore_best_weights:
                best_weights = model.get_weights()
        elif wait >= patience and epoch > start_from_epoch:
            logger.info("early stopping after epoch %d", epoch + 1)
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    if live is not None:
        live.on_train_end()
    return history
