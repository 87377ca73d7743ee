"""Datasets as arrays: the types, the registry of built-in datasets, and loading.

`datasets`: `Split`, `Dataset`, the built-in datasets' registry
(`DATASETS`) and `load_dataset`. Arrays in, arrays out: nothing here builds
a model. Imports nothing heavy at the top, so `tuning.config` can check a
dataset's name before TensorFlow loads.
"""
