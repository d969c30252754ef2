"""Photos on disk to tensors: image checks, the split, datasets, augmentation, and VGG16 feature files."""
