"""advx-intelligent-mixup: paper 000's label-aware mixup."""
