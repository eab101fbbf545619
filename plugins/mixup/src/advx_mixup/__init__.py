"""advx-mixup: mixup-family and adversarial-training augmentations (paper 001, IAT)."""
