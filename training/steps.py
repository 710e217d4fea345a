"""The compiled step functions of `training.loop.Trainer`: train, test, metric reads.

Each step runs under `strategy.run` as Keras' own `train_step` does: the model's
`compute_loss` (compiled losses plus `model.losses`, already scaled by 1/replicas under
a strategy), `optimizer.scale_loss` (loss scaling under mixed precision), gradients
applied by `optimizer.apply_gradients` (which sums them over replicas), then the
compiled metrics via `model.compute_metrics`. An optimizer that clips gradients
would clip each replica's part before the sum; over two or more replicas the step sums
them first, clips the sum as the optimizer would on one device, and hands each replica
its share (one more all-reduce per step). A compiled loss reduced
"mean_with_sample_weight" divides by each replica's own weight sum (Keras then scales it
by 1/replicas): over two or more replicas the step all-reduces the weight sums and
rescales the compiled loss, so that train and validation losses and gradients are of the
global weighted mean, as on one device. The loss of an epoch is tracked by the
trainer's own mean, weighted by batch size like Keras' loss tracker, so that it equals
`fit`'s epoch loss. Metric results are read outside the replicas, where the
SUM-aggregated accumulators add up every replica's part.
"""

import warnings

import keras
import tensorflow as tf

WEIGHTED_MEAN = "mean_with_sample_weight"


class StepFunctions:
    """Builds the model's state for a dataset's batches and compiles the steps.

    Args:
        model: compiled inside `strategy.scope()`.
        strategy: the strategy of the model.
        element_spec: the training dataset's element_spec: (x, y) or (x, y, sample_weight).
    """

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy, element_spec):
        self.model = model
        self.strategy = strategy
        with strategy.scope():
            # What fit() does first: creates the weights, the compiled metrics' and
            # losses' state and the optimizer's slots, so that a checkpoint restores all
            # of them before the first step (Keras has no public method for it).
            model._symbolic_build(data_batch=element_spec)
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            self.loss_tracker = keras.metrics.Mean(name="loss")
        self.clipping = clipping_settings(model.optimizer)
        # One replica: the optimizer clips the whole gradient itself.
        self.clip_after_all_reduce = bool(self.clipping) and strategy.num_replicas_in_sync > 1
        self.global_weighted_mean = strategy.num_replicas_in_sync > 1 and reduced_by_weighted_mean(
            model.loss
        )
        self.train = tf.function(self._train, reduce_retracing=True)
        self.test = tf.function(self._test, reduce_retracing=True)
        self.metric_results = tf.function(self._metric_results)
        self.weights_finite = tf.function(self._weights_finite)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        """The trainer's loss mean, then the model's metrics (less its own unused loss mean)."""
        return [self.loss_tracker] + [m for m in self.model.metrics if m.name != "loss"]

    def checkpoint_objects(self) -> dict:
        """What exact resume restores besides the run's counters."""
        return {
            "model": self.model,
            # Explicitly: TF's object graph does not reach the variables of a Keras 3
            # functional model's nested layers (only the optimizer's trainable ones were
            # saved, so batch-norm statistics came back at their initial values).
            "model_variables": list(self.model.variables),
            "optimizer": self.model.optimizer,
            "metrics": [variable for metric in self.metrics for variable in metric.variables],
        }

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def _update_metrics(self, x, y, y_pred, sample_weight, loss, batch_share=None) -> None:
        """`batch_share`: what the loss is weighted by in the epoch's mean (default: the
        replica's batch size)."""
        if batch_share is None:
            batch_share = tf.shape(tf.nest.flatten(x)[0])[0]
        # The loss of one replica's batch, unscaled from 1/replicas, weighted by its share.
        self.loss_tracker.update_state(
            loss * self.strategy.num_replicas_in_sync, sample_weight=batch_share
        )
        self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _compute_loss(self, x, y, y_pred, sample_weight, training: bool):
        """The model's loss of this replica's part of the batch -> (loss, batch share).

        A "mean_with_sample_weight" loss over R > 1 replicas: replica r's compiled loss
        is S_r / W_r / R (its weighted sum over its own weight sum, scaled by Keras), so
        it is multiplied by R * W_r / W (W_r: the sum of its sample weights, not counting
        a Keras mask on the predictions, which no model here has; W: every replica's,
        all-reduced; 0 when W is 0, as the loss itself is then), which makes the
        replicas' losses add up to S / W, one device's loss. `model.losses` (also
        scaled by 1/R) stay as they are. The epoch's mean then weights each replica's
        loss by an equal share of the global batch, B / R, as the replicas' shares of
        S / W need not follow their batch sizes. Otherwise (or without sample weights):
        (loss, None).
        """
        model = self.model
        loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if not self.global_weighted_mean or sample_weight is None:
            return loss, None
        replicas = self.strategy.num_replicas_in_sync
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        weight_sum = tf.add_n(
            [
                tf.reduce_sum(tf.cast(weight, tf.float32))
                for weight in tf.nest.flatten(sample_weight)
            ]
        )
        global_weight_sum, global_batch_size = tf.unstack(
            tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM,
                tf.stack([weight_sum, tf.cast(batch_size, tf.float32)]),
            )
        )
        scale = tf.stop_gradient(tf.math.divide_no_nan(replicas * weight_sum, global_weight_sum))
        # What compute_loss adds to the compiled loss: each of model.losses summed, / R.
        regularization = tf.zeros((), loss.dtype)
        for extra in model.losses:
            regularization += tf.reduce_sum(tf.cast(extra, loss.dtype))
        regularization = regularization / tf.cast(replicas, loss.dtype)
        loss = regularization + (loss - regularization) * tf.cast(scale, loss.dtype)
        return loss, global_batch_size / replicas

    def _replica_train(self, data):
        model = self.model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss, batch_share = self._compute_loss(x, y, y_pred, sample_weight, training=True)
            scaled_loss = model.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        if self.clip_after_all_reduce:
            gradients = self._all_reduced_clipped_share(gradients)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        self._update_metrics(x, y, y_pred, sample_weight, loss, batch_share)
        return loss

    def _all_reduced_clipped_share(self, gradients: list) -> list:
        """This replica's share of the clipped sum of every replica's gradients.

        The optimizer would clip each replica's gradient before summing them; clipped
        here, the sum is clipped as one device clips its gradient, and each replica
        passes 1/replicas of it on, which the optimizer adds up again. Its own clipping
        leaves these shares as they are: their norms and values are within the limits.
        Gradients are of the scaled loss under loss scaling, so the limits are scaled.
        """
        replicas = self.strategy.num_replicas_in_sync
        context = tf.distribute.get_replica_context()
        present = [index for index, gradient in enumerate(gradients) if gradient is not None]
        summed = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [gradients[index] for index in present]
        )
        scale = tf.cast(self.model.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
        clipped = clip_gradients(summed, self.clipping, scale)
        shares = list(gradients)
        for index, gradient in zip(present, clipped, strict=True):
            shares[index] = map_values(gradient, lambda values: values / replicas)
        return shares

    def _replica_test(self, data):
        model = self.model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = model(x, training=False)
        loss, batch_share = self._compute_loss(x, y, y_pred, sample_weight, training=False)
        self._update_metrics(x, y, y_pred, sample_weight, loss, batch_share)

    def _train(self, data):
        """One step on a distributed batch -> (the step's global loss, the epoch's logs)."""
        losses = self.strategy.run(self._replica_train, args=(data,))
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return loss, self._metric_results()

    def _test(self, data):
        self.strategy.run(self._replica_test, args=(data,))

    def _metric_results(self) -> dict:
        results = {}
        for metric in self.metrics:
            result = metric.result()
            results.update(result if isinstance(result, dict) else {metric.name: result})
        return results

    def _weights_finite(self):
        checks = [
            tf.reduce_all(tf.math.is_finite(variable))
            for variable in self.model.weights
            if variable.dtype.startswith("float") or variable.dtype.startswith("bfloat")
        ]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def reduced_by_weighted_mean(loss) -> bool:
    """Whether the compiled loss (`model.loss`) is one loss reduced "mean_with_sample_weight";
    warns that several losses with that reduction are left to Keras' per-replica means."""
    if isinstance(loss, keras.losses.Loss):
        return loss.reduction == WEIGHTED_MEAN
    if any(getattr(each, "reduction", None) == WEIGHTED_MEAN for each in tf.nest.flatten(loss)):
        warnings.warn(
            'Several compiled losses with reduction "mean_with_sample_weight": over several '
            "replicas each divides by its replica's own weight sum (not corrected)",
            stacklevel=3,
        )
    return False


CLIPPING_SETTINGS = ("clipnorm", "global_clipnorm", "clipvalue")


def clipping_settings(optimizer: keras.optimizers.Optimizer) -> dict[str, float]:
    """The optimizer's gradient clipping ({} for none); a loss scale wrapper's inner one's."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    settings = {name: getattr(optimizer, name, None) for name in CLIPPING_SETTINGS}
    return {name: float(value) for name, value in settings.items() if value}


def map_values(gradient, function):
    """`function` of a dense gradient, or of an IndexedSlices gradient's values."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(function(gradient.values), gradient.indices, gradient.dense_shape)
    return function(gradient)


def clip_gradients(gradients: list, settings: dict[str, float], scale) -> list:
    """Clips as Keras optimizers do (clipnorm per variable, global_clipnorm over all,
    clipvalue per element), the limits multiplied by the loss scale `scale`."""
    if "clipnorm" in settings:
        limit = settings["clipnorm"] * scale
        return [tf.clip_by_norm(gradient, tf.cast(limit, gradient.dtype)) for gradient in gradients]
    if "global_clipnorm" in settings:
        return tf.clip_by_global_norm(gradients, settings["global_clipnorm"] * scale)[0]
    limit = settings["clipvalue"] * scale
    return [
        map_values(
            gradient,
            lambda values: tf.clip_by_value(
                values, -tf.cast(limit, values.dtype), tf.cast(limit, values.dtype)
            ),
        )
        for gradient in gradients
    ]
