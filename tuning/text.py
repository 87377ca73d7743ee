"""Short text forms shared by the progress lines, the summary and the report.

Owns nothing but formatting; imports nothing heavy, so `tuning.report` starts fast.
"""

from __future__ import annotations

ECE_WARNING = 0.05  # a test calibration error above this is said plainly


def format_values(values: dict) -> str:
    """Hyperparameters in brief: `units=1024×2,128 act=relu lr=1.2e-03 ...`."""
    layer_units = [v for _, v in sorted((int(k.rsplit("_", 1)[1]), v) for k, v in values.items() if k.startswith("units_"))]
    parts = [f"units={compress(layer_units)}"] if layer_units else []
    short = {"activation": "act", "kernel_initializer": "init", "normalization": "norm",
             "learning_rate": "lr", "batch_size": "bs", "num_layers": "layers"}  # fmt: skip
    for key, value in values.items():
        if key.startswith(("units_", "tuner/")):
            continue
        if isinstance(value, float):
            value = f"{value:.2g}" if value >= 0.01 or value == 0 else f"{value:.1e}"
        parts.append(f"{short.get(key, key)}={value}")
    return " ".join(parts)


def compress(items: list) -> str:
    """Runs of equal items as `value×count`: `[1024, 1024, 128]` is `1024×2,128`."""
    runs: list[list] = []
    for item in items:
        if runs and runs[-1][0] == item:
            runs[-1][1] += 1
        else:
            runs.append([item, 1])
    return ",".join(f"{value}×{count}" if count > 1 else f"{value}" for value, count in runs)


def calibration_warning(ece: float) -> str | None:
    """A plain sentence when the test calibration error is above `ECE_WARNING`, else None."""
    if ece <= ECE_WARNING:
        return None
    return (f"Calibration warning: the expected calibration error is {ece:.3f}, above {ECE_WARNING}: the predicted "
            "probabilities are not to be read as confidences. Use the predicted class, or recalibrate "
            "(temperature scaling on held-out data) before relying on the probabilities.")
