"""Photos on disk to tensors: image checks, datasets, augmentation, and VGG16 feature files."""
