"""advx-batchout: paper 002's feature augmentation."""
