"""Every generative model behind a small interface, and the model registry (`models.registry`)."""
