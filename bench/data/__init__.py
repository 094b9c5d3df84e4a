"""Data: the dataset registry and its sources (images, 2-D toys, latents of a frozen
autoencoder)."""
