"""How much work a stage has, and how long the rest will take: for users on a CPU who wonder
whether a stage takes minutes or hours.

A stage logs its amount of work when it starts, then one estimate of the time left
once the first units of work have run (the very first is skipped: it includes
TensorFlow's tracing and warm-up), and for training a firmer one after the first
whole epoch (validation included).
"""

from __future__ import annotations

import logging
import time

WARM_UP_UNITS = 1  # units run before the clock starts (tracing, caches)


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``: a duration at a useful precision."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class WorkEstimate:
    """Counts finished units of work (images, batches) and logs one estimate of the time left."""

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str, estimate_after: int):
        self.logger, self.what, self.total, self.unit = logger, what, total, unit
        self.estimate_after = max(estimate_after, WARM_UP_UNITS + 1)
        self.done = 0
        self.clock_start: tuple[float, int] | None = None
        self.estimated = False

    def update(self, count: int) -> None:
        """Record ``count`` more finished units; log the estimate once enough have run."""
        self.done += count
        if self.clock_start is None and self.done >= WARM_UP_UNITS:
            self.clock_start = (time.perf_counter(), self.done)
            return
        if self.estimated or self.clock_start is None or self.done < self.estimate_after:
            return
        if self.done >= self.total:  # all done: nothing left to estimate
            self.estimated = True
            return
        started, done_then = self.clock_start
        rate = (self.done - done_then) / max(time.perf_counter() - started, 1e-9)
        self.estimated = True
        self.logger.info(
            "%s: %d of %d %s in, about %s left (%.1f %s/s)",
            self.what, self.done, self.total, self.unit, format_duration((self.total - self.done) / rate), rate, self.unit,
        )


def training_estimate_callback(logger: logging.Logger, what: str, epochs: int, steps_per_epoch: int | None):
    """A Keras callback logging the work (epochs x batches) and the estimated training time left."""
    import keras

    class TrainingEstimate(keras.callbacks.Callback):
        """Logs an estimate after the first batches and a firmer one after the first epoch."""

        def on_train_begin(self, logs=None):
            steps = self.params.get("steps") or steps_per_epoch
            self.steps = steps
            self.batches = WorkEstimate(logger, what, (steps or 0) * epochs, "batches", min(10, steps or 10))
            logger.info("%s: up to %d epochs of %s batches", what, epochs, steps if steps else "?")

        def on_train_batch_end(self, batch, logs=None):
            if self.steps and not self.batches.estimated:
                self.batches.update(1)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0 and epochs > 1:
                seconds = time.perf_counter() - self.epoch_started
                logger.info(
                    "%s: first epoch (validation included) took %s: at most about %s for the other %d "
                    "(early stopping may end sooner)",
                    what, format_duration(seconds), format_duration(seconds * (epochs - 1)), epochs - 1,
                )

    return TrainingEstimate()


def prediction_estimate_callback(logger: logging.Logger, what: str):
    """A Keras callback for ``model.predict`` or ``model.evaluate`` logging the estimated time left after a
    few batches (of the batch count Keras knows; none when the data's length is unknown)."""
    import keras

    class PredictionEstimate(keras.callbacks.Callback):
        """Counts predicted (or evaluated) batches."""

        def on_predict_begin(self, logs=None):
            self.steps = self.params.get("steps") or 0
            self.estimate = WorkEstimate(logger, what, self.steps, "batches", min(5, self.steps))

        def on_predict_batch_end(self, batch, logs=None):
            if self.steps and not self.estimate.estimated:
                self.estimate.update(1)

        on_test_begin, on_test_batch_end = on_predict_begin, on_predict_batch_end

    return PredictionEstimate()
