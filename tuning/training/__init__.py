"""Training a Keras model as a trial or a retraining member does: feeding, callbacks, schedules, memory.

`pipeline`: the splits as `tf.data` pipelines; `callbacks`: early stopping,
the NaN guard, deadlines, epoch times, TensorBoard; `schedules`: the
learning-rate schedules and the wrappers that fit them to the epochs
actually trained; `epoch_times`: a steady epoch's time; `graph_memory`:
handing back finished graphs; `threads`: TensorFlow's thread pools. Used by
the search, the retraining and the spaces; imports neither.
"""
