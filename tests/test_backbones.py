import numpy as np
import pytest

torch = pytest.importorskip("torch")

from faceapp.vision import models  # noqa: E402
from faceapp.vision.embed import Embedder  # noqa: E402
from training.backbones import BACKBONES, create_backbone  # noqa: E402


def test_registry():
    assert {"sface", "mobilefacenet"} <= set(BACKBONES)
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("resnet9000")
    net = create_backbone("mobilefacenet", width=0.25, embedding_size=32)
    assert net(torch.zeros(2, 3, 112, 112)).shape == (2, 32)


def test_sface_in_torch_matches_the_onnx_model_on_real_faces(faces):
    path = models.check(models.bundled_path(models.ROLE_SFACE)).path
    net = create_backbone("sface", pretrained=path).eval()
    assert all(p.requires_grad for p in net.parameters())
    prelus = [m for m in net.modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 27 and all(m.weight.requires_grad for m in prelus)
    crops = np.stack([f.crop for f in faces.values()])
    emb = Embedder(path, provider="cpu")
    raw_onnx = emb.session.run([emb.contract.output_name], {emb.contract.input_name: emb.preprocess(crops)})[0]
    with torch.no_grad():
        raw_torch = net(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(raw_onnx - raw_torch).max() <= 1e-4
