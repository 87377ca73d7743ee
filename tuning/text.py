"""Short text forms shared by the progress lines, the summary and the report.

Owns nothing but formatting; imports nothing heavy, so `tuning.report` starts fast.
"""

from __future__ import annotations


def format_values(values: dict) -> str:
    """Hyperparameters in brief: `units=256,128 act=relu lr=1.2e-03 ...`."""
    layer_units = [(int(k.rsplit("_", 1)[1]), v) for k, v in values.items() if k.startswith("units_")]
    units = [str(v) for _, v in sorted(layer_units)]
    parts = [f"units={','.join(units)}"] if units else []
    short = {"activation": "act", "kernel_initializer": "init", "normalization": "norm",
             "learning_rate": "lr", "batch_size": "bs", "num_layers": "layers"}  # fmt: skip
    for key, value in values.items():
        if key.startswith(("units_", "tuner/")):
            continue
        if isinstance(value, float):
            value = f"{value:.2g}" if value >= 0.01 or value == 0 else f"{value:.1e}"
        parts.append(f"{short.get(key, key)}={value}")
    return " ".join(parts)
