"""faceapp's training package (torch): margin heads, backbones, data, fine-tuning,
evaluation and ONNX export. It may import ``faceapp``; ``faceapp`` never imports it.
"""
