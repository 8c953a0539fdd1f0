import math

import pytest

torch = pytest.importorskip("torch")

from training.margins import PRESETS, Margin, MarginHead, margin_logits, margin_preset, target_logit  # noqa: E402


def slow_target(cos: float, m: Margin) -> float:
    """Per-sample reference of the monotonic margin formula, in plain Python."""
    c = min(max(cos, -1 + 1e-7), 1 - 1e-7)
    if m.m1 == 1.0 and m.m2 == 0.0:
        return cos - m.m3
    theta = math.acos(c)
    arg = m.m1 * theta + m.m2
    k = math.floor(arg / math.pi)
    return (-1) ** k * math.cos(arg) - 2 * k - m.m3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(PRESETS))
def test_vectorised_logits_match_a_slow_loop(dtype, name):
    m = margin_preset(name, s=30.0)
    g = torch.Generator().manual_seed(0)
    cos = (torch.rand(16, 7, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    cos[0, :] = 1.0
    cos[1, :] = -1.0
    labels = torch.randint(0, 7, (16,), generator=g)
    fast = margin_logits(cos, labels, m)
    for i in range(16):
        for j in range(7):
            want = m.s * (slow_target(float(cos[i, j]), m) if j == labels[i] else float(cos[i, j]))
            assert float(fast[i, j]) == pytest.approx(want, abs=1e-2 if dtype == torch.float32 else 1e-9)


def test_presets_reduce_to_textbook_formulas():
    theta = torch.linspace(0.05, 2.4, 50, dtype=torch.float64)
    cos = torch.cos(theta)
    torch.testing.assert_close(target_logit(cos, margin_preset("arcface")), torch.cos(theta + 0.5))
    torch.testing.assert_close(target_logit(cos, margin_preset("cosface")), cos - 0.35)
    torch.testing.assert_close(target_logit(cos, margin_preset("combined")), torch.cos(theta + 0.3) - 0.2)
    t = theta[theta * 1.7 < math.pi]
    torch.testing.assert_close(target_logit(torch.cos(t), margin_preset("sphereface")), torch.cos(1.7 * t))
    torch.testing.assert_close(target_logit(cos, margin_preset("softmax")), cos)


@pytest.mark.parametrize("name", list(PRESETS))
def test_target_logit_decreases_monotonically_over_the_whole_range(name):
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    psi = target_logit(torch.cos(theta), margin_preset(name))
    assert torch.all(psi[1:] <= psi[:-1] + 1e-9)
    assert torch.all(psi <= torch.cos(theta) + 1e-9)  # a margin never helps the target


@pytest.mark.parametrize("name", list(PRESETS))
def test_gradients_are_finite_at_the_edges(name):
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    head = MarginHead(2, 2, margin_preset(name, s=16))
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    loss = head(emb, torch.tensor([0, 0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("kwargs", [dict(s=0), dict(s=-1), dict(m1=0.5), dict(m2=-0.1), dict(m2=4.0), dict(m3=-0.2)])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        Margin(**kwargs)
    with pytest.raises(ValueError):
        margin_preset("nonsense")


def test_margin_warmup_grows_from_zero():
    head = MarginHead(4, 3, margin_preset("combined"), warmup_steps=10)
    assert head.current_margin() == Margin(1.0, 0.0, 0.0, 64.0)
    for _ in range(5):
        head.step()
    m = head.current_margin()
    assert m.m2 == pytest.approx(0.15) and m.m3 == pytest.approx(0.1)
    for _ in range(10):
        head.step()
    assert head.current_margin() == margin_preset("combined")


def test_head_loss_is_cross_entropy_of_margin_logits():
    torch.manual_seed(0)
    head = MarginHead(8, 5, margin_preset("arcface", s=20))
    emb, y = torch.randn(6, 8), torch.randint(0, 5, (6,))
    want = torch.nn.functional.cross_entropy(margin_logits(head.cosines(emb), y, head.margin), y)
    torch.testing.assert_close(head(emb, y), want)
