"""Vision: images in, unit-length face embeddings out (detect -> align -> embed) and the model files they load."""
