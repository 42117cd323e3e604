"""Data: annotation formats, augmentation, the seed's target encoder, datasets and loaders."""
